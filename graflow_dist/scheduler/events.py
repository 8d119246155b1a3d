"""What drivers tell the scheduler (outcomes) and what it answers (decisions)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from graflow_dist.scheduler.specs import NodeShape, TaskSpec


class RunStatus(StrEnum):
    """Every status a run has, in process and on a cluster (the one definition)."""

    SUBMITTED = "submitted"  # stored by the client; no coordinator has picked it up yet
    RUNNING = "running"
    WAITING = "waiting"  # only tasks waiting for something outside the run (a person) left
    COMPLETED = "completed"
    TERMINATED = "terminated"  # a task called terminate_workflow: a normal end
    CANCELLED = "cancelled"
    FAILED = "failed"
    MAX_STEPS = "max_steps_exceeded"
    # Never stored: what a worker's claim says of a job left over from an earlier
    # submission of the same session (the worker skips it).
    SUPERSEDED = "superseded"

    @classmethod
    def parse(cls, value: str) -> RunStatus | None:
        """The status named ``value``, or None for anything else."""
        try:
            return cls(value)
        except ValueError:
            return None

    @property
    def finished(self) -> bool:
        return self in FINISHED_STATUSES

    @property
    def succeeded(self) -> bool:
        return self in SUCCEEDED_STATUSES

    @property
    def active(self) -> bool:
        """Tasks of a run in this status may still run."""
        return self in (RunStatus.SUBMITTED, RunStatus.RUNNING, RunStatus.WAITING)


SUCCEEDED_STATUSES = frozenset({RunStatus.COMPLETED, RunStatus.TERMINATED})
FINISHED_STATUSES = SUCCEEDED_STATUSES | {RunStatus.CANCELLED, RunStatus.FAILED,
                                          RunStatus.MAX_STEPS}


@dataclass(frozen=True)
class NextTask:
    """A task a running task asked for with ``next_task``; ``shape`` is set when the
    task is new to the graph (a dynamic task). ``nodes`` are the other new nodes that
    came with it: a new group's members, a new chain's later tasks, its join."""

    task_id: str
    goto: bool = False
    shape: NodeShape | None = None
    nodes: tuple[NodeShape, ...] = ()

    def new_shapes(self) -> list[NodeShape]:
        return ([self.shape] if self.shape is not None else []) + list(self.nodes)


@dataclass(frozen=True)
class CheckpointRequest:
    path: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskOutcome:
    """How a task run ended, besides its return value (which lives in the channel)."""

    iterate: bool = False
    next_tasks: list[NextTask] = field(default_factory=list)
    terminate: str | None = None
    cancel: str | None = None
    checkpoint: CheckpointRequest | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "iterate": self.iterate,
            "next_tasks": [
                {"task_id": n.task_id, "goto": n.goto,
                 "shape": n.shape.to_dict() if n.shape else None,
                 **({"nodes": [s.to_dict() for s in n.nodes]} if n.nodes else {})}
                for n in self.next_tasks
            ],
            "terminate": self.terminate,
            "cancel": self.cancel,
            "checkpoint": {"path": self.checkpoint.path, "metadata": self.checkpoint.metadata}
            if self.checkpoint
            else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskOutcome:
        ckpt = data.get("checkpoint")
        return cls(
            iterate=bool(data.get("iterate")),
            next_tasks=[
                NextTask(n["task_id"], bool(n.get("goto")),
                         NodeShape.from_dict(n["shape"]) if n.get("shape") else None,
                         tuple(NodeShape.from_dict(s) for s in n.get("nodes") or ()))
                for n in data.get("next_tasks", [])
            ],
            terminate=data.get("terminate"),
            cancel=data.get("cancel"),
            checkpoint=CheckpointRequest(ckpt.get("path"), dict(ckpt.get("metadata") or {}))
            if ckpt
            else None,
        )


@dataclass(frozen=True)
class RunEnd:
    """Why a run finished. ``error`` is set for every unsuccessful status."""

    status: RunStatus
    error: Exception | None = None


@dataclass
class Decision:
    """The scheduler's answer to one event.

    ``dispatch`` are new specs now ready (already recorded as pending), ``checkpoint``
    a checkpoint the driver must write now (the frontier already includes the event),
    ``end`` is set once the run is over, ``stale`` when the event was dropped because
    its token is not in flight (a duplicate or fenced completion). ``continued`` is a
    worker's continuation proposal the scheduler adopted (pending, already running on
    that worker: not to be dispatched), ``refused`` why it did not adopt one.
    """

    dispatch: list[TaskSpec] = field(default_factory=list)
    checkpoint: CheckpointRequest | None = None
    end: RunEnd | None = None
    stale: bool = False
    completed: list[str] = field(default_factory=list)
    continued: TaskSpec | None = None
    refused: str = ""
