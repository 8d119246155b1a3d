"""RunRecord: a run's settings and progress, as its ``meta`` hash holds them.

`RunRecord.from_meta` is the one decoder of that hash: every field is checked, so a
damaged record fails its own run with a clear error instead of a service.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from graflow_dist.broker.keys import RunField
from graflow_dist.errors import WireError
from graflow_dist.names import is_prefix, is_task_id, is_workflow_name
from graflow_dist.scheduler.events import RunStatus
from graflow_dist.scheduler.specs import DEFAULT_MAX_CYCLES
from graflow_dist.scheduler.state import DEFAULT_CRASH_LIMIT, DEFAULT_MAX_STEPS
from graflow_dist.wire.fields import float_text, int_text, shown

R = RunField


@dataclass
class RunRecord:
    """What a cluster knows about one run."""

    session_id: str
    status: RunStatus = RunStatus.SUBMITTED
    graph_hash: str = ""
    trace_id: str = ""
    workflow: str = ""
    start_node: str | None = None
    max_steps: int = DEFAULT_MAX_STEPS
    default_max_cycles: int = DEFAULT_MAX_CYCLES
    default_max_retries: int = 0
    crash_limit: int = DEFAULT_CRASH_LIMIT
    queue: str = ""
    resume: bool = False
    incarnation: str = ""  # new at every submit/resume: jobs of an earlier one are skipped
    traceparent: str = ""  # W3C trace context of the submission, handed to every batch
    # progress, kept by the coordinator (running: by the job scripts)
    total: int = 0
    done: int = 0
    running: int = 0
    pending: int = 0
    failed: int = 0
    steps: int = 0
    dispatch_seq: int = 0
    submitted_at: float | None = None
    started_at: float | None = None
    updated_at: float | None = None
    finished_at: float | None = None
    last_task: str | None = None
    error: str | None = None
    error_type: str | None = None
    error_data: dict[str, Any] = field(default_factory=dict)
    last_checkpoint: str | None = None
    checkpoint_error: str | None = None

    def settings_meta(self) -> dict[str, str | int]:
        """The fields a submission writes (progress starts at zero)."""
        return {
            R.SESSION_ID: self.session_id, R.STATUS: self.status.value,
            R.GRAPH_HASH: self.graph_hash, R.TRACE_ID: self.trace_id,
            R.WORKFLOW: self.workflow, R.START_NODE: self.start_node or "",
            R.MAX_STEPS: self.max_steps, R.DEFAULT_MAX_CYCLES: self.default_max_cycles,
            R.DEFAULT_MAX_RETRIES: self.default_max_retries, R.CRASH_LIMIT: self.crash_limit,
            R.QUEUE: self.queue, R.RESUME: int(self.resume), R.INCARNATION: self.incarnation,
            R.TRACEPARENT: self.traceparent,
            R.TOTAL: self.total, R.SUBMITTED_AT: repr(self.submitted_at or 0.0),
            R.DONE: 0, R.RUNNING: 0, R.PENDING: 0, R.FAILED: 0,
        }

    @classmethod
    def from_meta(cls, session_id: str, meta: dict[bytes, bytes]) -> RunRecord:
        """Decode a ``meta`` hash; a malformed field raises `WireError` naming it."""
        try:
            m = {k.decode(): v.decode() for k, v in meta.items()}
        except UnicodeDecodeError:
            raise WireError(f"run {session_id!r} record: not UTF-8") from None
        return cls.from_text_meta(session_id, m)

    @classmethod
    def from_text_meta(cls, session_id: str, m: dict[str, str],
                       what: str = "") -> RunRecord:
        """`from_meta` for fields already decoded (e.g. carried by a submission
        event)."""
        what = what or f"run {session_id!r} record"

        def count(name: str, default: int = 0, minimum: int = 0) -> int:
            raw = m.get(name)
            return default if raw in (None, "") else int_text(raw, f"{what} {name}",
                                                                minimum=minimum)

        def moment(name: str) -> float | None:
            raw = m.get(name)
            return None if raw in (None, "") else float_text(raw, f"{what} {name}")

        if R.STATUS not in m:
            raise WireError(f"{what}: no status (a partial record)")
        status = RunStatus.parse(m[R.STATUS])
        if status is None or status is RunStatus.SUPERSEDED:
            raise WireError(f"{what}: unknown status {m.get(R.STATUS)!r}")
        queue = m.get(R.QUEUE, "")
        if queue and not is_prefix(queue):
            raise WireError(f"{what}: queue {shown(queue)} is not a queue name")
        start_node = m.get(R.START_NODE) or None
        if start_node is not None and not is_task_id(start_node):
            raise WireError(f"{what}: start_node {shown(start_node)} is not a task id")
        if not is_workflow_name(m.get(R.WORKFLOW, "")):
            raise WireError(f"{what}: workflow {shown(m.get(R.WORKFLOW))} is not a name")
        try:
            error_data = json.loads(m.get(R.ERROR_DATA) or "{}")
        except (ValueError, RecursionError):
            raise WireError(f"{what}: error_data is not JSON") from None
        if not isinstance(error_data, dict):
            raise WireError(f"{what}: error_data must be a JSON object")
        return cls(
            session_id=session_id, status=status, graph_hash=m.get(R.GRAPH_HASH, ""),
            trace_id=m.get(R.TRACE_ID) or session_id, workflow=m.get(R.WORKFLOW, ""),
            start_node=start_node,
            max_steps=count(R.MAX_STEPS, DEFAULT_MAX_STEPS, 1),
            default_max_cycles=count(R.DEFAULT_MAX_CYCLES, DEFAULT_MAX_CYCLES, 1),
            default_max_retries=count(R.DEFAULT_MAX_RETRIES),
            crash_limit=count(R.CRASH_LIMIT, DEFAULT_CRASH_LIMIT, 1),
            queue=queue, resume=m.get(R.RESUME) == "1",
            incarnation=m.get(R.INCARNATION, ""), traceparent=m.get(R.TRACEPARENT, ""),
            total=count(R.TOTAL), done=count(R.DONE),
            # `running` is kept by scripts with HINCRBY; a reaped job may briefly take
            # it below zero, which means none
            running=max(0, count(R.RUNNING, 0, -(2**62))), pending=count(R.PENDING),
            failed=count(R.FAILED), steps=count(R.STEPS), dispatch_seq=count(R.DISPATCH_SEQ),
            submitted_at=moment(R.SUBMITTED_AT), started_at=moment(R.STARTED_AT),
            updated_at=moment(R.UPDATED_AT), finished_at=moment(R.FINISHED_AT),
            last_task=m.get(R.LAST_TASK) or None, error=m.get(R.ERROR) or None,
            error_type=m.get(R.ERROR_TYPE) or None, error_data=error_data,
            last_checkpoint=m.get(R.LAST_CHECKPOINT) or None,
            checkpoint_error=m.get(R.CHECKPOINT_ERROR) or None,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (the CLI's ``status --json``, the web console)."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, RunStatus):
                value = value.value
            elif isinstance(value, float) and not math.isfinite(value):
                value = None
            out[name] = value
        return out
