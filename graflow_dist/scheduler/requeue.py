"""Putting a failed or dead-lettered task back into a finished run's frontier, so that
resuming that frontier runs the task again (the console's and `Client.retry`'s
"retry this task")."""

from __future__ import annotations

import copy

from graflow_dist.errors import UnknownTaskError
from graflow_dist.scheduler.frontier import FrontierSnapshot
from graflow_dist.scheduler.specs import GraphShape, TaskSpec


def requeue_task(frontier: FrontierSnapshot, shape: GraphShape, task_id: str
                 ) -> FrontierSnapshot:
    """A copy of ``frontier`` in which ``task_id`` is pending again with a fresh retry
    and crash budget. A task still pending (dead-lettered) keeps its spec; one that
    failed gets a new spec, back in its parallel group if it belonged to one that has
    not completed (the group's failure is forgotten, so it waits for the task again)."""
    if task_id not in shape.nodes or shape.nodes[task_id].is_group:
        raise UnknownTaskError(task_id, "the run's graph (only tasks can be retried)")
    out = copy.deepcopy(frontier)
    kept = [s for s in out.pending_tasks if s.task_id == task_id]
    if kept:
        out.pending_tasks = [s.evolve(attempt=1, crashes=0, not_before=0.0)
                             if s.task_id == task_id else s for s in out.pending_tasks]
        return out
    group = next((g for g, p in out.groups.items() if task_id in p.failed), None)
    if group is not None and group in out.completed_tasks:
        group = None  # the group already passed (e.g. best effort): it is not re-opened
    if group is not None:
        progress = out.groups[group]
        del progress.failed[task_id]
        progress.outstanding.append(task_id)
    out.dispatch_seq += 1
    out.pending_tasks.append(TaskSpec(task_id=task_id, token=f"requeue.{out.dispatch_seq}",
                                      cycle=out.cycle_counts.get(task_id, 0), group=group))
    if task_id not in out.active:
        out.active = sorted({*out.active, task_id})
    return out
