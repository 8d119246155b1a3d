"""FrontierSnapshot: the scheduler's whole state as plain data.

The same snapshot goes into a checkpoint's ``.state.json`` and into the coordinator's
Redis frontier, which is why a checkpoint taken in-process resumes on a cluster and
vice versa.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graflow_dist.scheduler.specs import TaskSpec


@dataclass
class GroupProgress:
    """Where a started parallel group stands."""

    outstanding: list[str] = field(default_factory=list)
    succeeded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "outstanding": list(self.outstanding),
            "succeeded": list(self.succeeded),
            "failed": dict(self.failed),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GroupProgress:
        return cls(
            list(data.get("outstanding", [])),
            list(data.get("succeeded", [])),
            dict(data.get("failed", {})),
        )


@dataclass
class ParkedTask:
    """A pending task that waits for something outside the run (a person's answer)
    and holds no worker meanwhile; it runs again once woken. ``token`` names its spec
    among the pending tasks; ``deadline`` (epoch seconds, 0 for none) is when the
    waiting run is checkpointed; ``timed_out`` once that happened."""

    token: str
    deadline: float = 0.0
    timed_out: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"token": self.token, "deadline": self.deadline, "timed_out": self.timed_out}


@dataclass
class FrontierSnapshot:
    """A consistent frontier: what completed, what is still to run, and the counters.

    ``pending_tasks`` holds every spec that has not completed: ready, in flight
    (running tasks re-run from their start on resume) and waiting for a retry.
    ``released`` are the nodes whose successors were released (a node that looped or
    jumped completed without releasing them); joins wait on it. ``parked`` maps a wake
    key (a feedback id) to the pending task that waits for it.
    """

    session_id: str
    steps: int = 0
    completed_tasks: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    pending_tasks: list[TaskSpec] = field(default_factory=list)
    cycle_counts: dict[str, int] = field(default_factory=dict)
    groups: dict[str, GroupProgress] = field(default_factory=dict)
    active: list[str] = field(default_factory=list)
    dispatch_seq: int = 0
    crash_workers: dict[str, list[str]] = field(default_factory=dict)
    parked: dict[str, ParkedTask] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "steps": self.steps,
            "completed_tasks": list(self.completed_tasks),
            "released": list(self.released),
            "pending_tasks": [s.to_dict() for s in self.pending_tasks],
            "cycle_counts": dict(self.cycle_counts),
            "groups": {g: p.to_dict() for g, p in self.groups.items()},
            "active": list(self.active),
            "dispatch_seq": self.dispatch_seq,
            "crash_workers": {t: list(w) for t, w in self.crash_workers.items()},
            "parked": {k: p.to_dict() for k, p in self.parked.items()},
        }
