"""TaskRecord: what the console shows of one task of a run (its last report), and
WorkerStats: what a worker says about itself with each heartbeat.

Both are msgpack in Redis hashes, written by the coordinator's commit (task records)
and the worker's heartbeat (stats); the decoders check every field.
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass, field
from typing import Any

from graflow_dist.errors import WireError
from graflow_dist.wire import fields as f
from graflow_dist.wire.messages import packb, unpackb

# Bounds on what a report carries for the console (characters).
MAX_ERROR_CHARS = 2_000
MAX_TRACEBACK_CHARS = 8_000
MAX_PREVIEW_CHARS = 300

# TaskRecord.outcome: what the last report of the task did to it.
DONE = "done"
FAILED = "failed"  # raised, no retry left: the run (or its group) saw the failure
RETRYING = "retrying"  # raised, a retry is pending
LOST = "lost"  # its worker stopped heartbeating; re-dispatched
DEAD_LETTERED = "dead_lettered"  # lost too often: the run failed with it
WAITING = "waiting"  # parked: waits for a person's answer, holding no worker
OUTCOMES = frozenset({DONE, FAILED, RETRYING, LOST, DEAD_LETTERED, WAITING})

_preview_repr = reprlib.Repr()
_preview_repr.maxstring = MAX_PREVIEW_CHARS
_preview_repr.maxother = MAX_PREVIEW_CHARS
_preview_repr.maxlevel = 3


def preview(value: Any) -> str:
    """A short ``repr`` of a task's result, bounded in size and in cost."""
    try:
        text = _preview_repr.repr(value)
    except Exception as exc:  # a user __repr__ that raises
        text = f"<unprintable {type(value).__name__}: {type(exc).__name__}>"
    return clip(text, MAX_PREVIEW_CHARS)


def clip(text: str, limit: int, *, keep_end: bool = False) -> str:
    """``text`` cut to ``limit`` characters (a traceback keeps its end, where the
    error is)."""
    if len(text) <= limit:
        return text
    if keep_end:
        return "..." + text[-(limit - 3):]
    return text[:limit - 3] + "..."


@dataclass
class TaskRecord:
    """The last report of one task: who ran it, when, how it ended."""

    task_id: str
    outcome: str
    attempts: int = 1  # executions in this cycle, the reported one included
    cycle: int = 0
    worker: str = ""
    queued_at: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0
    duration_s: float = 0.0
    error: str = ""
    error_type: str = ""
    traceback: str = ""
    preview: str = ""
    continued: bool = False  # ran at once on the worker of its predecessor

    @property
    def queue_wait_s(self) -> float | None:
        if self.queued_at and self.started_at:
            return max(0.0, self.started_at - self.queued_at)
        return None

    def encode(self) -> bytes:
        return packb({"o": self.outcome, "n": self.attempts, "c": self.cycle,
                      "w": self.worker, "qa": self.queued_at, "sa": self.started_at,
                      "fa": self.finished_at, "du": self.duration_s, "err": self.error,
                      "et": self.error_type, "tb": self.traceback, "pv": self.preview,
                      "ct": self.continued})

    @classmethod
    def decode(cls, task_id: str, raw: Any, what: str = "task record") -> TaskRecord:
        what = f"{what} of {task_id!r}"
        body = f.mapping(unpackb(raw, what), what)
        outcome = f.text(body, "o", what)
        if outcome not in OUTCOMES:
            raise WireError(f"{what}: unknown outcome {outcome!r}")
        return cls(
            task_id=task_id, outcome=outcome, attempts=f.integer(body, "n", what, 1, minimum=0),
            cycle=f.integer(body, "c", what, 0, minimum=0), worker=f.text(body, "w", what, ""),
            queued_at=f.number(body, "qa", what, 0.0, minimum=0.0),
            started_at=f.number(body, "sa", what, 0.0, minimum=0.0),
            finished_at=f.number(body, "fa", what, 0.0, minimum=0.0),
            duration_s=f.number(body, "du", what, 0.0, minimum=0.0),
            error=f.text(body, "err", what, ""), error_type=f.text(body, "et", what, ""),
            traceback=f.text(body, "tb", what, ""), preview=f.text(body, "pv", what, ""),
            continued=f.flag(body, "ct", what, False),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "outcome": self.outcome, "attempts": self.attempts,
                "cycle": self.cycle, "worker": self.worker or None,
                "queued_at": self.queued_at or None, "started_at": self.started_at or None,
                "finished_at": self.finished_at or None, "duration_s": self.duration_s,
                "queue_wait_s": self.queue_wait_s, "error": self.error or None,
                "error_type": self.error_type or None, "traceback": self.traceback or None,
                "preview": self.preview or None, "continued": self.continued}


@dataclass
class WorkerStats:
    """A worker's own account, refreshed with each heartbeat."""

    name: str
    queue: str = ""
    host: str = ""
    pid: int = 0
    started_at: float = 0.0
    tasks_done: int = 0
    tasks_failed: int = 0
    current_session: str = ""
    current_tasks: list[str] = field(default_factory=list)

    def encode(self) -> bytes:
        return packb({"q": self.queue, "h": self.host, "p": self.pid, "sa": self.started_at,
                      "d": self.tasks_done, "f": self.tasks_failed, "s": self.current_session,
                      "t": self.current_tasks})

    @classmethod
    def decode(cls, name: str, raw: Any) -> WorkerStats:
        what = f"stats of worker {name!r}"
        body = f.mapping(unpackb(raw, what), what)
        return cls(
            name=name, queue=f.text(body, "q", what, ""), host=f.text(body, "h", what, ""),
            pid=f.integer(body, "p", what, 0, minimum=0),
            started_at=f.number(body, "sa", what, 0.0, minimum=0.0),
            tasks_done=f.integer(body, "d", what, 0, minimum=0),
            tasks_failed=f.integer(body, "f", what, 0, minimum=0),
            current_session=f.text(body, "s", what, ""),
            current_tasks=f.text_list(body, "t", what, []),
        )
