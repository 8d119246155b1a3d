"""An in-process run whose remaining tasks wait for human feedback stops as
``waiting``, with a checkpoint to resume from once the answers are in (Graflow writes
this checkpoint too; its tasks are pending in it, so they run again on resume and
their ``request_feedback`` returns the stored answer)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graflow_dist.core.checkpoint import CheckpointManager
from graflow_dist.core.context import ExecutionContext
from graflow_dist.errors import FeedbackTimeoutError
from graflow_dist.scheduler.events import RunStatus
from graflow_dist.scheduler.specs import TaskSpec

FEEDBACK_TIMEOUT_REASON = "feedback_timeout"


@dataclass(frozen=True)
class Waiting:
    """A task execution whose feedback request timed out; it stays pending."""

    spec: TaskSpec
    error: FeedbackTimeoutError


def stop_waiting(context: ExecutionContext, waiting: list[Waiting]) -> None:
    """Checkpoint ``context`` (its frontier already holds the waiting tasks as pending),
    note the checkpoint on each waiting request and mark the run ``waiting``."""
    first = waiting[0]
    metadata: dict[str, Any] = {
        "reason": FEEDBACK_TIMEOUT_REASON,
        "feedback_id": first.error.feedback_id,
        "task_id": first.spec.task_id,
        "timeout": first.error.timeout,
    }
    if len(waiting) > 1:
        metadata["waiting"] = [{"feedback_id": w.error.feedback_id, "task_id": w.spec.task_id}
                               for w in waiting]
    path, meta = CheckpointManager.create_checkpoint(
        context, metadata=metadata, resuming_task_id=first.spec.task_id
    )
    manager = context.feedback_manager
    for item in waiting:
        request = manager.get_request(item.error.feedback_id)
        if request is None:  # raised by task code, not by request_feedback
            continue
        request.metadata.update({
            "checkpoint_path": path,
            "checkpoint_id": meta.checkpoint_id,
            "checkpoint_created_at": meta.created_at,
            "checkpoint_steps": meta.steps,
            "checkpoint_reason": FEEDBACK_TIMEOUT_REASON,
        })
        manager.store_request(request)
    context.status = RunStatus.WAITING
    return None
