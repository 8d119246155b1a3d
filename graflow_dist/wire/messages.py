"""What travels through Redis queues and the event stream: msgpack, versioned, no pickle.

A *batch* is the payload of one RQ job: ready TaskSpecs of one session. An *event* is
an entry of the coordinator's stream: a submission, a cancellation, or a worker's
report on a task (done, failed, lost, handed back).
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import msgpack

from graflow_dist.errors import WireError
from graflow_dist.scheduler.specs import TaskSpec

WIRE_VERSION = 1
JOB_FUNC = "graflow_dist.worker.batch.run_batch"  # what rq shows as the job's function


def packb(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def unpackb(raw: bytes, what: str) -> Any:
    try:
        return msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise WireError(f"{what}: not valid msgpack ({exc})") from None


def _require(body: Any, fields: tuple[str, ...], what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise WireError(f"{what}: expected a map, got {type(body).__name__}")
    if body.get("v") != WIRE_VERSION:
        raise WireError(f"{what}: unsupported wire version {body.get('v')!r}")
    missing = [f for f in fields if f not in body]
    if missing:
        raise WireError(f"{what}: missing field(s) {', '.join(missing)}")
    return body


# --- TaskSpec on the wire ----------------------------------------------------------


def spec_to_wire(spec: TaskSpec) -> list[Any]:
    return [spec.task_id, spec.token, spec.cycle, spec.attempt, spec.crashes, spec.group,
            spec.not_before]


def spec_from_wire(item: Any, what: str) -> TaskSpec:
    if not isinstance(item, list | tuple) or len(item) != 7:
        raise WireError(f"{what}: malformed task spec {item!r:.80}")
    task_id, token, cycle, attempt, crashes, group, not_before = item
    if not isinstance(task_id, str) or not isinstance(token, str):
        raise WireError(f"{what}: task spec needs string task id and token")
    return TaskSpec(task_id, token, int(cycle), int(attempt), int(crashes), group,
                    float(not_before))


# --- batches (RQ job payloads) -------------------------------------------------------


@dataclass
class Batch:
    session_id: str
    graph_hash: str
    specs: list[TaskSpec]
    trace_id: str = ""
    default_max_cycles: int = 10
    enqueued_at: float = field(default_factory=time.time)
    traceparent: str = ""  # W3C trace context of the submission; absent in old payloads

    def encode(self) -> bytes:
        body = {
            "v": WIRE_VERSION, "s": self.session_id, "g": self.graph_hash,
            "tr": self.trace_id, "mc": self.default_max_cycles, "q": self.enqueued_at,
            "specs": [spec_to_wire(s) for s in self.specs],
        }
        if self.traceparent:
            body["tp"] = self.traceparent
        return packb(body)

    @classmethod
    def decode(cls, raw: bytes, what: str = "batch") -> Batch:
        body = _require(unpackb(raw, what), ("s", "g", "specs"), what)
        if not isinstance(body["specs"], list):
            raise WireError(f"{what}: specs must be a list")
        return cls(
            session_id=str(body["s"]),
            graph_hash=str(body["g"]),
            specs=[spec_from_wire(s, what) for s in body["specs"]],
            trace_id=str(body.get("tr", "")),
            default_max_cycles=int(body.get("mc", 10)),
            enqueued_at=float(body.get("q", 0.0)),
            traceparent=str(body.get("tp", "")),
        )


def rq_job_data(batch_bytes: bytes) -> bytes:
    """The ``data`` field of an ``rq:job:<id>`` hash, in rq's layout (zlib of the
    serialized ``(func, instance, args, kwargs)``) with our msgpack serializer."""
    return zlib.compress(packb([JOB_FUNC, None, [batch_bytes], {}]))


def batch_from_rq_data(data: bytes, job_id: str) -> Batch:
    what = f"rq job {job_id}"
    try:
        raw = zlib.decompress(data)
    except zlib.error:
        raw = data
    job = unpackb(raw, what)
    if not (isinstance(job, list) and len(job) == 4 and job[0] == JOB_FUNC
            and isinstance(job[2], list) and len(job[2]) == 1
            and isinstance(job[2][0], bytes)):
        raise WireError(f"{what}: not a graflow-dist batch job")
    return Batch.decode(job[2][0], what)


class MsgpackSerializer:
    """An rq serializer (``dumps``/``loads``) so rq's own tools can read our jobs."""

    @staticmethod
    def dumps(obj: Any) -> bytes:
        return packb(obj)

    @staticmethod
    def loads(data: bytes) -> Any:
        return unpackb(data, "rq payload")


# --- events -----------------------------------------------------------------------

SUBMIT, RESUME, CANCEL = "submit", "resume", "cancel"
DONE, FAIL, LOST, HANDBACK = "done", "fail", "lost", "handback"
EVENT_KINDS = frozenset({SUBMIT, RESUME, CANCEL, DONE, FAIL, LOST, HANDBACK})


@dataclass
class Event:
    """One entry of the coordinator's event stream.

    ``result`` (done) is the task's encoded return value: it travels with the report, so
    a completion the coordinator applies always has its result (even if Redis later
    loses the entry); ``outcome`` is a `TaskOutcome` dict; ``dynamic`` maps new task ids to signed
    cloudpickled tasks; ``error`` / ``error_type`` / ``fatal`` describe a failure.
    """

    kind: str
    session_id: str
    token: str = ""
    task_id: str = ""
    worker: str = ""
    outcome: dict[str, Any] = field(default_factory=dict)
    dynamic: dict[str, bytes] = field(default_factory=dict)
    error: str = ""
    error_type: str = ""
    fatal: bool = False
    error_data: dict[str, Any] = field(default_factory=dict)
    tokens: list[str] = field(default_factory=list)
    result: bytes | None = None  # the encoded return value (done)
    at: float = field(default_factory=time.time)

    def encode(self) -> bytes:
        body: dict[str, Any] = {"v": WIRE_VERSION, "k": self.kind, "s": self.session_id,
                                "at": self.at}
        for name, key in (("token", "t"), ("task_id", "task"), ("worker", "w"),
                          ("outcome", "o"), ("dynamic", "dyn"), ("error", "err"),
                          ("error_type", "et"), ("fatal", "fatal"), ("error_data", "ed"),
                          ("tokens", "ts")):
            value = getattr(self, name)
            if value:
                body[key] = value
        if self.result is not None:
            body["r"] = self.result
        return packb(body)

    @classmethod
    def decode(cls, raw: bytes, what: str = "event") -> Event:
        body = _require(unpackb(raw, what), ("k", "s"), what)
        if body["k"] not in EVENT_KINDS:
            raise WireError(f"{what}: unknown event kind {body['k']!r}")
        try:
            return cls(
                kind=body["k"], session_id=str(body["s"]), token=str(body.get("t", "")),
                task_id=str(body.get("task", "")), worker=str(body.get("w", "")),
                outcome=dict(body.get("o") or {}), dynamic=dict(body.get("dyn") or {}),
                error=str(body.get("err", "")), error_type=str(body.get("et", "")),
                fatal=bool(body.get("fatal", False)), error_data=dict(body.get("ed") or {}),
                tokens=list(body.get("ts") or []), result=body.get("r"),
                at=float(body.get("at", 0.0)),
            )
        except (TypeError, ValueError) as exc:
            raise WireError(f"{what}: malformed event ({exc})") from None
