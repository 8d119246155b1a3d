"""What travels through Redis queues and the event stream: msgpack, versioned, no pickle.

A *batch* is the payload of one RQ job: ready TaskSpecs of one session. An *event* is
an entry of the coordinator's stream: a submission, a cancellation, or a worker's
report on a task (done, failed, lost, handed back). Decoders check every field.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import msgpack

from graflow_dist.errors import WireError
from graflow_dist.names import is_session_id, is_task_id
from graflow_dist.scheduler.events import TaskOutcome
from graflow_dist.scheduler.specs import DEFAULT_MAX_CYCLES, TaskSpec
from graflow_dist.wire import fields as f
from graflow_dist.wire.signing import is_content_hash, seal, unseal
from graflow_dist.wire.specs import decode_spec, encode_spec, outcome_from_dict

WIRE_VERSION = 1
# Steps of a batch's chain at most (the coordinator sends DEFAULT_MAX_CONTINUATION).
MAX_CHAIN = 1024
JOB_FUNC = "graflow_dist.worker.plain_rq.run_batch"  # what rq shows as the job's function


def packb(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def unpackb(raw: Any, what: str) -> Any:
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise WireError(f"{what}: expected bytes, got {type(raw).__name__}")
    try:
        return msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise WireError(f"{what}: not valid msgpack ({exc})") from None


def _bounded(raw: Any, what: str, max_bytes: int | None) -> None:
    if max_bytes is not None and isinstance(raw, bytes | bytearray) and len(raw) > max_bytes:
        raise WireError(f"{what}: {len(raw)} bytes, over the {max_bytes}-byte message limit")


def _session(body: dict[str, Any], key: str, what: str) -> str:
    session_id = f.text(body, key, what)
    if not is_session_id(session_id):
        raise WireError(f"{what}: invalid session id {f.shown(session_id)}")
    return session_id


def _versioned(body: Any, what: str) -> dict[str, Any]:
    body = f.mapping(body, what)
    if body.get("v") != WIRE_VERSION:
        raise WireError(f"{what}: unsupported wire version {body.get('v')!r}")
    return body


# --- batches (RQ job payloads) -------------------------------------------------------


@dataclass
class Batch:
    """Ready specs of one session; ``code`` maps their task ids to the code blobs that
    hold them (tasks added while the run ran have none: their code is the run's)."""

    session_id: str
    graph_hash: str
    specs: list[TaskSpec]
    trace_id: str = ""
    default_max_cycles: int = DEFAULT_MAX_CYCLES
    enqueued_at: float = field(default_factory=time.time)
    traceparent: str = ""  # W3C trace context of the submission; absent in old payloads
    # task id -> its timeout in seconds, for the specs' tasks that have one (from their
    # NodeShape); absent in old payloads
    timeouts: dict[str, float] = field(default_factory=dict)
    # task id -> the code blob that holds it (tasks added while the run ran have none);
    # also for the tasks of ``chain``
    code: dict[str, str] = field(default_factory=dict)
    # (task id, cycle): the plain successors after the last spec, in order, which the
    # worker may run at once (local continuation); absent in old payloads
    chain: list[tuple[str, int]] = field(default_factory=list)

    def to_body(self) -> dict[str, Any]:
        body = {"v": WIRE_VERSION, "s": self.session_id, "g": self.graph_hash,
                "tr": self.trace_id, "mc": self.default_max_cycles, "q": self.enqueued_at,
                "specs": [encode_spec(s) for s in self.specs]}
        if self.traceparent:
            body["tp"] = self.traceparent
        if self.timeouts:
            body["to"] = self.timeouts
        if self.code:  # each blob hash once, and an index per spec (-1: none)
            blobs = list(dict.fromkeys(self.code.values()))
            index = {h: i for i, h in enumerate(blobs)}
            body["cb"] = blobs
            body["ci"] = [index.get(self.code.get(s.task_id, ""), -1) for s in self.specs]
            if self.chain:
                body["ch"] = [[task_id, cycle, index.get(self.code.get(task_id, ""), -1)]
                              for task_id, cycle in self.chain]
        return body

    @classmethod
    def from_body(cls, body: Any, what: str = "batch") -> Batch:
        body = _versioned(body, what)
        specs = body.get("specs")
        if not isinstance(specs, list):
            raise WireError(f"{what}: specs must be a list")
        decoded = [decode_spec(s, what) for s in specs]
        blobs = f.text_list(body, "cb", what, [])
        if not all(is_content_hash(h) for h in blobs):
            raise WireError(f"{what}: a code blob hash is malformed")
        index = body.get("ci", [-1] * len(decoded))
        if not (isinstance(index, list) and len(index) == len(decoded) and all(
                type(i) is int and -1 <= i < len(blobs) for i in index)):
            raise WireError(f"{what}: malformed code index")
        chain = _chain(body, what, len(blobs))
        code = {s.task_id: blobs[i] for s, i in zip(decoded, index, strict=True) if i >= 0}
        code.update((task_id, blobs[i]) for task_id, _cycle, i in chain)
        return cls(
            session_id=_session(body, "s", what),
            graph_hash=f.text(body, "g", what),
            specs=decoded,
            trace_id=f.text(body, "tr", what, ""),
            default_max_cycles=f.integer(body, "mc", what, DEFAULT_MAX_CYCLES, minimum=1),
            enqueued_at=f.number(body, "q", what, 0.0, minimum=0.0),
            traceparent=f.text(body, "tp", what, ""),
            timeouts=_timeouts(body, what),
            code=code,
            chain=[(task_id, cycle) for task_id, cycle, _i in chain],
        )

    def job_data(self) -> bytes:
        """The ``data`` field of an ``rq:job:<id>`` hash: RQ's ``(func, instance, args,
        kwargs)`` in msgpack (see `MsgpackSerializer`), the batch its only argument."""
        return packb([JOB_FUNC, None, [self.to_body()], {}])

    @classmethod
    def from_job_data(cls, data: Any, job_id: str, max_bytes: int | None = None) -> Batch:
        what = f"rq job {job_id}"
        _bounded(data, what, max_bytes)
        job = unpackb(data, what)
        if not (isinstance(job, list) and len(job) == 4 and job[0] == JOB_FUNC
                and isinstance(job[2], list) and len(job[2]) == 1):
            raise WireError(f"{what}: not a graflow-dist batch job")
        return cls.from_body(job[2][0], what)


def _chain(body: dict[str, Any], what: str, blobs: int) -> list[tuple[str, int, int]]:
    """The ``ch`` entries: [task id, cycle, code blob index], each with its code."""
    chain = body.get("ch", [])
    if not isinstance(chain, list) or len(chain) > MAX_CHAIN:
        raise WireError(f"{what}: the chain must be a list of at most {MAX_CHAIN} steps")
    out = []
    for item in chain:
        if not (isinstance(item, list) and len(item) == 3 and is_task_id(item[0])
                and type(item[1]) is int and item[1] >= 0
                and type(item[2]) is int and 0 <= item[2] < blobs):
            raise WireError(f"{what}: malformed chain step {f.shown(item)}")
        out.append((item[0], item[1], item[2]))
    return out


def _timeouts(body: dict[str, Any], what: str) -> dict[str, float]:
    timeouts = f.submap(body, "to", what, {})
    for task_id, seconds in timeouts.items():
        if (not isinstance(task_id, str) or isinstance(seconds, bool)
                or not isinstance(seconds, int | float) or not 0 < seconds < math.inf):
            raise WireError(f"{what}: timeouts must map task ids to seconds > 0, got "
                            f"{task_id!r:.40}: {seconds!r:.20}")
    return {task_id: float(seconds) for task_id, seconds in timeouts.items()}


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
# A task waits for ``wake_key`` (a feedback id) and gave its worker back; the answer
# for a wake key arrived.
PARK, ANSWER = "park", "answer"
EVENT_KINDS = frozenset({SUBMIT, RESUME, CANCEL, DONE, FAIL, LOST, HANDBACK, PARK, ANSWER})
TASK_EVENT_KINDS = frozenset({DONE, FAIL, LOST, HANDBACK, PARK})


# Event attributes encoded only when set (attribute, msgpack key).
_OPTIONAL_EVENT_FIELDS = (
    ("token", "t"), ("task_id", "task"), ("worker", "w"), ("dynamic", "dyn"),
    ("error", "err"), ("error_type", "et"), ("fatal", "fatal"), ("error_data", "ed"),
    ("queued_at", "qa"), ("started_at", "sa"), ("finished_at", "fa"), ("duration_s", "du"),
    ("traceback", "tb"), ("preview", "pv"), ("wake_key", "wk"), ("deadline", "dl"),
)


@dataclass
class Event:
    """One entry of the coordinator's event stream.

    ``result`` (done) is the task's encoded return value: it travels with the report, so
    a completion the coordinator applies always has its result (even if Redis later
    loses the entry); ``outcome`` says what the task asked for (iterate, next tasks, a
    checkpoint, ...); ``dynamic`` maps new task ids to signed cloudpickled tasks;
    ``error`` / ``error_type`` / ``fatal`` describe a failure; ``wake_key`` and
    ``deadline`` (epoch seconds, 0: none) what a parked task waits for, and until when
    before its run is checkpointed. A worker's report also says when the task's batch
    was queued, when the task started and finished (epoch seconds), how long it ran, a
    bounded traceback (failures) and a bounded preview of the result (done); they feed
    the console's per-task detail (0 / "" when absent).
    """

    kind: str
    session_id: str
    token: str = ""
    task_id: str = ""
    worker: str = ""
    outcome: TaskOutcome = field(default_factory=TaskOutcome)
    dynamic: dict[str, bytes] = field(default_factory=dict)
    error: str = ""
    error_type: str = ""
    fatal: bool = False
    error_data: dict[str, Any] = field(default_factory=dict)
    result: bytes | None = None  # the encoded return value (done)
    wake_key: str = ""
    deadline: float = 0.0
    at: float = field(default_factory=time.time)
    queued_at: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0
    duration_s: float = 0.0
    traceback: str = ""
    preview: str = ""
    # done: the spec of the successor the worker runs at once (its proposal); only
    # ever appended by the report script while the worker holds the job's lease
    continuation: TaskSpec | None = None
    # submit of a small run its client started: the run as written with the event
    # (record, shape, frontier), so the coordinator takes it over without reading it
    # back (`graflow_dist.broker.frontier.started_body`). Decoded as it came: its
    # reader checks it (a malformed one costs a read of the run, not the event)
    started: Any = field(default_factory=dict)

    def encode(self, secret: bytes | None = None) -> bytes:
        """The stream entry: the msgpack body sealed with the message MAC (so a Redis
        writer without the secret cannot forge or alter a report)."""
        body: dict[str, Any] = {"v": WIRE_VERSION, "k": self.kind, "s": self.session_id,
                                "at": self.at}
        for name, key in _OPTIONAL_EVENT_FIELDS:
            value = getattr(self, name)
            if value:
                body[key] = value
        if self.outcome != TaskOutcome():
            body["o"] = self.outcome.to_dict()
        if self.result is not None:
            body["r"] = self.result
        if self.continuation is not None:
            body["cn"] = encode_spec(self.continuation)
        if self.started:
            body["st"] = self.started
        return seal(packb(body), secret)

    def size_estimate(self) -> int:
        """Bytes of the encoded event, roughly (the big parts), without encoding it."""
        return (256 + len(self.result or b"") + len(self.error)
                + sum(len(k) + len(v) for k, v in self.dynamic.items())
                + (len(packb(encode_spec(self.continuation))) if self.continuation else 0))

    @classmethod
    def decode(cls, raw: Any, what: str = "event", *, secret: bytes | None = None,
               max_bytes: int | None = None) -> Event:
        """Verify the MAC (`SignatureError`), then decode every field (`WireError`)."""
        _bounded(raw, what, max_bytes)
        body = unpackb(unseal(raw, what, secret), what)
        plain = _plain_event(body)
        if plain is not None:
            return plain
        body = _versioned(body, what)
        kind = f.text(body, "k", what)
        if kind not in EVENT_KINDS:
            raise WireError(f"{what}: unknown event kind {kind!r}")
        dynamic = f.submap(body, "dyn", what, {})
        if not all(isinstance(v, bytes) for v in dynamic.values()):
            raise WireError(f"{what}: dynamic tasks must be signed blobs")
        result = body.get("r")
        if result is not None and not isinstance(result, bytes):
            raise WireError(f"{what}: a result must be bytes")
        outcome = body.get("o")
        continuation = body.get("cn")
        if continuation is not None:
            continuation = decode_spec(continuation, f"{what}: continuation")
        return cls(
            kind=kind, session_id=_session(body, "s", what), token=f.text(body, "t", what, ""),
            task_id=f.text(body, "task", what, ""), worker=f.text(body, "w", what, ""),
            outcome=TaskOutcome() if outcome is None else outcome_from_dict(outcome, what),
            dynamic=dict(dynamic), error=f.text(body, "err", what, ""),
            error_type=f.text(body, "et", what, ""), fatal=f.flag(body, "fatal", what, False),
            error_data=dict(f.submap(body, "ed", what, {})), result=result,
            wake_key=f.text(body, "wk", what, ""),
            deadline=f.number(body, "dl", what, 0.0, minimum=0.0),
            at=f.number(body, "at", what, 0.0),
            queued_at=f.number(body, "qa", what, 0.0, minimum=0.0),
            started_at=f.number(body, "sa", what, 0.0, minimum=0.0),
            finished_at=f.number(body, "fa", what, 0.0, minimum=0.0),
            duration_s=f.number(body, "du", what, 0.0, minimum=0.0),
            traceback=f.text(body, "tb", what, ""), preview=f.text(body, "pv", what, ""),
            continuation=continuation, started=body.get("st") or {},
        )


# The fields of a plain report (no outcome, no dynamic tasks, no error details): most
# events a coordinator reads. Each is checked as the strict decoder would.
_PLAIN_TEXT = frozenset({"k", "s", "t", "task", "w", "err", "et", "wk", "tb", "pv"})
_PLAIN_TIMES = frozenset({"qa", "sa", "fa", "du", "dl"})
_PLAIN_FIELDS = _PLAIN_TEXT | _PLAIN_TIMES | {"v", "at", "r"}
_PLAIN_NAMES = {"k": "kind", "s": "session_id", "t": "token", "task": "task_id",
                "w": "worker", "err": "error", "et": "error_type", "wk": "wake_key",
                "tb": "traceback", "pv": "preview", "qa": "queued_at", "sa": "started_at",
                "fa": "finished_at", "du": "duration_s", "dl": "deadline", "at": "at",
                "r": "result"}


def _plain_event(body: Any) -> Event | None:
    """The event if it is a plain report whose every field is well-formed, else None
    (then the field-by-field decoder decides, and names what is wrong)."""
    if type(body) is not dict or body.get("v") != WIRE_VERSION \
            or not all(type(k) is str for k in body) or not _PLAIN_FIELDS.issuperset(body) \
            or type(body.get("k")) is not str or body["k"] not in EVENT_KINDS \
            or not is_session_id(body.get("s")):
        return None
    fields: dict[str, Any] = {}
    for key, value in body.items():
        kind = type(value)
        if key in _PLAIN_TEXT:
            if kind is not str:
                return None
        elif key in _PLAIN_TIMES:
            if not (kind is float or kind is int) or not 0 <= value < math.inf:
                return None
            value = float(value)
        elif key == "at":
            if not (kind is float or kind is int) or not -math.inf < value < math.inf:
                return None
            value = float(value)
        elif key == "r":
            if kind is not bytes:
                return None
        else:
            continue  # "v"
        fields[_PLAIN_NAMES[key]] = value
    fields.setdefault("at", 0.0)
    return Event(**fields)
