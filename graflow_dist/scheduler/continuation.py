"""Local continuation of chains: which successor a worker may run at once, and when the
scheduler adopts the worker's proposal.

A worker that completes a task whose only successor becomes ready may run that
successor itself instead of waiting for the coordinator to enqueue it; so may a worker
whose job held every member of a parallel group, with the group's plain successor (its
join) once the last member is done. The coordinator stays the single source of truth:
the worker proposes a spec (a token of its own), and the scheduler adopts it only if it
would have dispatched exactly that successor; otherwise it dispatches the successor
normally and the worker's result is fenced off.
See docs/reliability.md, "Local continuation".
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from graflow_dist.scheduler.events import Decision, TaskOutcome
from graflow_dist.scheduler.specs import GraphShape, TaskSpec

# Steps a worker continues at most from one claimed job before it hands the chain back
# through the queue (so one worker cannot hold a long chain unnoticed).
DEFAULT_MAX_CONTINUATION = 64
# Tokens proposed by workers end with this; scheduler tokens are ``{epoch}.{seq}``.
CONTINUATION_SUFFIX = "-c"


def continuation_token() -> str:
    """A fresh token for a worker's proposal (unique: 96 random bits)."""
    return f"{uuid.uuid4().hex[:24]}{CONTINUATION_SUFFIX}"


def is_continuation_token(token: str) -> bool:
    """Whether ``token`` was proposed by a worker (an adopted continuation)."""
    return token.endswith(CONTINUATION_SUFFIX)


def plain_chain(shape: GraphShape, node: str, cycles: dict[str, int],
                limit: int = DEFAULT_MAX_CONTINUATION) -> list[tuple[str, int]]:
    """The plain successors after ``node``, in order, at most ``limit``: each the only
    successor of the one before, with that one as its only predecessor, not a group,
    not a group member, with code of its own, not seen before in the chain. Each comes
    with the cycle the scheduler would give it now (``cycles``)."""
    chain: list[tuple[str, int]] = []
    seen = {node}
    members: set[str] | None = None
    current = node
    while len(chain) < limit:
        successors = shape.nodes[current].successors
        if len(successors) != 1:
            break
        succ = successors[0]
        succ_shape = shape.nodes.get(succ)
        if (succ_shape is None or succ in seen or succ_shape.is_group or not succ_shape.code
                or not _only(succ_shape.predecessors, current)):
            break
        if members is None:  # only graphs with a chain pay for this
            members = shape.member_ids()
        if succ in members:
            break
        chain.append((succ, cycles.get(succ, 0)))
        seen.add(succ)
        current = succ
    return chain


def whole_group(shape: GraphShape, specs: Sequence[TaskSpec]) -> str | None:
    """The parallel group of which ``specs`` are every member, each once, at its first
    attempt (a job holding all of a group's first dispatch), or None."""
    group = specs[0].group if specs else None
    if group is None:
        return None
    node = shape.nodes.get(group)
    members = node.members if node is not None else None
    if (not members or len(members) != len(specs)
            or any(s.group != group or s.attempt != 1 for s in specs)
            or {s.task_id for s in specs} != set(members)):
        return None
    return group


def refusal(shape: GraphShape, done: TaskSpec, outcome: TaskOutcome, decision: Decision,
            proposal: TaskSpec, token_taken: bool) -> str:
    """Why a completion's proposal cannot be adopted ("" when it can): the completed
    task asked for nothing but its successors, and ``decision`` (that completion,
    applied) dispatches exactly the proposed successor, at the same cycle, and nothing
    else. For a group member, the successor is its group's: that completion finished
    the group."""
    if decision.end is not None:
        return "the run ended"
    if decision.checkpoint is not None or outcome != TaskOutcome():
        return "the task asked for more than its successor"
    origin = done.task_id if done.group is None else done.group
    if done.group is not None and done.group not in decision.completed:
        return "the group is not complete"
    if not (is_continuation_token(proposal.token) and proposal.attempt == 1
            and proposal.crashes == 0 and proposal.group is None
            and proposal.not_before == 0.0):
        return "not a continuation proposal"
    if token_taken:
        return "the proposed token is taken"
    if len(decision.dispatch) != 1:
        return f"{len(decision.dispatch)} tasks became ready"
    ready = decision.dispatch[0]
    if ready.task_id != proposal.task_id or ready.group is not None:
        return f"{ready.task_id!r} became ready, not {proposal.task_id!r}"
    if ready.cycle != proposal.cycle:
        return f"cycle {ready.cycle} of {ready.task_id!r}, not {proposal.cycle}"
    node = shape.nodes[origin]
    succ = shape.nodes.get(proposal.task_id)
    if (not _only(node.successors, proposal.task_id) or succ is None or succ.is_group
            or not _only(succ.predecessors, origin)):
        return f"{proposal.task_id!r} is not the plain successor of {origin!r}"
    return ""


def _only(items: Sequence[str], item: str) -> bool:
    """Whether ``items`` is exactly ``[item]`` (without copying a fan-in's long list)."""
    return len(items) == 1 and items[0] == item
