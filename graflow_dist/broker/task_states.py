"""The state of every node of a run, for drawing: derived from its frontier, the
tasks its workers hold right now, and each task's last report.

States are `graflow_dist.drawing.NODE_STATES`: ``pending`` (not reached yet),
``ready`` (queued), ``running`` (in a job a worker holds), ``retrying`` (queued or
delayed again after a failure or a lost worker), ``waiting`` (parked, holding no
worker), ``done``, ``failed`` and ``dead_lettered``.
"""

from __future__ import annotations

from collections.abc import Mapping, Set

from graflow_dist.scheduler.frontier import FrontierSnapshot
from graflow_dist.scheduler.specs import GraphShape, TaskSpec
from graflow_dist.wire import task_records
from graflow_dist.wire.task_records import TaskRecord

PENDING, READY, RUNNING, WAITING = "pending", "ready", "running", "waiting"
DONE, FAILED, RETRYING, DEAD_LETTERED = "done", "failed", "retrying", "dead_lettered"


def task_states(shape: GraphShape, frontier: FrontierSnapshot,
                records: Mapping[str, TaskRecord], running_tokens: Set[str],
                run_active: bool) -> dict[str, str]:
    """Node id -> state for every node of ``shape``."""
    pending: dict[str, list[TaskSpec]] = {}
    for spec in frontier.pending_tasks:
        pending.setdefault(spec.task_id, []).append(spec)
    completed = set(frontier.completed_tasks)
    parked = {p.token for p in frontier.parked.values()}
    states: dict[str, str] = {}
    for node_id, node in shape.nodes.items():
        if node.is_group:
            continue
        record = records.get(node_id)
        specs = pending.get(node_id, [])
        if run_active and specs:
            states[node_id] = _in_flight(specs, running_tokens, parked)
        elif record is not None and record.outcome == task_records.DEAD_LETTERED and specs:
            states[node_id] = DEAD_LETTERED
        elif record is not None and record.outcome == task_records.FAILED:
            states[node_id] = FAILED
        elif node_id in completed:
            states[node_id] = DONE
        else:
            states[node_id] = PENDING
    for node_id, node in shape.nodes.items():
        if node.is_group:
            states[node_id] = _group_state(node_id, node.members or [], states, completed,
                                           frontier, run_active)
    return states


def _in_flight(specs: list[TaskSpec], running_tokens: Set[str], parked: Set[str]) -> str:
    if any(s.token in running_tokens for s in specs):
        return RUNNING
    if any(s.token in parked for s in specs):
        return WAITING
    if any(s.not_before > 0 or s.attempt > 1 or s.crashes > 0 for s in specs):
        return RETRYING
    return READY


def _group_state(group: str, members: list[str], states: Mapping[str, str],
                 completed: Set[str], frontier: FrontierSnapshot, run_active: bool) -> str:
    if group in completed:
        return DONE
    progress = frontier.groups.get(group)
    if progress is None:
        return PENDING
    if progress.failed and not run_active and not progress.outstanding:
        return FAILED
    member_states = {states.get(m) for m in members}
    if FAILED in member_states or DEAD_LETTERED in member_states:
        return FAILED if not run_active else RUNNING
    return RUNNING if run_active else PENDING


def progress_counts(states: Mapping[str, str], shape: GraphShape) -> dict[str, int]:
    """How many tasks (groups left out) are in each state."""
    counts: dict[str, int] = {}
    for node_id, state in states.items():
        if not shape.nodes[node_id].is_group:
            counts[state] = counts.get(state, 0) + 1
    return counts
