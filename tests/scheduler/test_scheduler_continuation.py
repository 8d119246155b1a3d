"""Local continuation in the pure scheduler: a worker's proposal for the successor it
runs at once is adopted only when the scheduler would have dispatched exactly it."""

from __future__ import annotations

from scheduler_shapes import build_shape

from graflow_dist.scheduler import GraphShape, NextTask, Scheduler, TaskOutcome, TaskSpec
from graflow_dist.scheduler.continuation import (
    continuation_token,
    is_continuation_token,
    plain_chain,
    whole_group,
)
from graflow_dist.scheduler.events import CheckpointRequest

CODE = "c" * 32


def _coded(shape: GraphShape) -> GraphShape:
    for node in shape.nodes.values():
        node.code = CODE
    return shape


def _started(edges: str, **kwargs: object) -> tuple[Scheduler, str]:
    sched = Scheduler(_coded(build_shape(edges, **kwargs)), "s1")  # type: ignore[arg-type]
    [first] = sched.start().dispatch
    return sched, first.token


def test_a_plain_successor_is_adopted_under_the_worker_s_token() -> None:
    sched, token = _started("a>b b>c")
    proposal = TaskSpec("b", continuation_token())
    decision = sched.complete(token, TaskOutcome(), proposal)
    assert decision.continued == proposal and decision.dispatch == [] and not decision.refused
    assert list(sched.inflight) == [proposal.token]
    journal = sched.drain_journal()
    assert list(journal.pending_put) == [proposal.token]  # stored as pending, like any spec
    assert [s.token for s in sched.snapshot().pending_tasks] == [proposal.token]
    # Its own completion is applied like any other, and continues again.
    second = TaskSpec("c", continuation_token())
    assert sched.complete(proposal.token, TaskOutcome(), second).continued == second
    final = sched.complete(second.token, TaskOutcome())
    assert final.end is not None and sched.completed == dict.fromkeys("abc")


def _refused(sched: Scheduler, token: str, proposal: TaskSpec,
             outcome: TaskOutcome | None = None) -> tuple[str, list[str]]:
    decision = sched.complete(token, outcome or TaskOutcome(), proposal)
    assert decision.continued is None and proposal.token not in sched.inflight
    return decision.refused, [s.task_id for s in decision.dispatch]


def test_refused_proposals_leave_the_successor_to_dispatch() -> None:
    sched, token = _started("a>b")
    assert _refused(sched, token, TaskSpec("b", continuation_token(), cycle=1)) == (
        "cycle 0 of 'b', not 1", ["b"])
    sched, token = _started("a>b a>c")
    reason, ready = _refused(sched, token, TaskSpec("b", continuation_token()))
    assert (reason, sorted(ready)) == ("2 tasks became ready", ["b", "c"])
    sched, token = _started("a>b")
    assert _refused(sched, token, TaskSpec("c", continuation_token()))[1] == ["b"]
    sched, token = _started("a>b")  # a scheduler's token is no proposal
    assert _refused(sched, token, TaskSpec("b", "e.99"))[0] == "not a continuation proposal"
    sched, token = _started("a>b")
    assert _refused(sched, token, TaskSpec("b", token + "-c", attempt=2))[1] == ["b"]


def test_a_join_with_several_predecessors_is_not_continued() -> None:
    sched = Scheduler(_coded(build_shape("a>j b>j")), "s1")
    first, second = sched.start().dispatch
    assert _refused(sched, first.token, TaskSpec("j", continuation_token())) == (
        "0 tasks became ready", [])
    assert _refused(sched, second.token, TaskSpec("j", continuation_token()))[1] == ["j"]


def test_what_a_task_asked_for_refuses_the_proposal() -> None:
    sched, token = _started("a>b")
    _refused(sched, token, TaskSpec("b", continuation_token()), TaskOutcome(cancel="no"))
    assert sched.end is not None
    for outcome in (TaskOutcome(iterate=True), TaskOutcome(terminate="stop"),
                    TaskOutcome(checkpoint=CheckpointRequest(None, {})),
                    TaskOutcome(next_tasks=[NextTask("b")])):
        sched, token = _started("a>b")
        reason, _ready = _refused(sched, token, TaskSpec("b", continuation_token()), outcome)
        assert reason, outcome


def test_the_group_s_last_member_continues_with_the_join() -> None:
    sched = Scheduler(_coded(build_shape("g>d d>e", groups={"g": ["x", "y"]})), "s1")
    x, y = sched.start().dispatch
    assert (x.group, y.group) == ("g", "g")
    # Before the group is complete, its join is not ready: refused, nothing dispatched.
    assert _refused(sched, x.token, TaskSpec("d", continuation_token())) == (
        "the group is not complete", [])
    proposal = TaskSpec("d", continuation_token())
    decision = sched.complete(y.token, TaskOutcome(), proposal)
    assert decision.continued == proposal and decision.dispatch == []
    assert decision.completed == ["y", "g"] and list(sched.inflight) == [proposal.token]
    assert sched.complete(proposal.token, TaskOutcome()).dispatch[0].task_id == "e"


def test_no_continuation_past_a_group_that_fails_or_forks() -> None:
    sched = Scheduler(_coded(build_shape("g>d", groups={"g": ["x", "y"]})), "s1")
    x, y = sched.start().dispatch
    sched.fail(x.token, "boom")
    assert _refused(sched, y.token, TaskSpec("d", continuation_token()))[0] == \
        "the run ended"
    sched = Scheduler(_coded(build_shape("g>d g>e", groups={"g": ["x"]})), "s1")
    [x] = sched.start().dispatch
    reason, ready = _refused(sched, x.token, TaskSpec("d", continuation_token()))
    assert (reason, sorted(ready)) == ("2 tasks became ready", ["d", "e"])
    sched = Scheduler(_coded(build_shape("g>d e>d", groups={"g": ["x"]})), "s1")
    ready = {s.task_id: s for s in sched.start().dispatch}
    sched.complete(ready["e"].token, TaskOutcome())
    assert _refused(sched, ready["x"].token, TaskSpec("d", continuation_token())) == (
        "'d' is not the plain successor of 'g'", ["d"])


def test_no_continuation_after_the_end() -> None:
    sched, token = _started("a>b")
    sched.cancel("by a client")
    decision = sched.complete(token, TaskOutcome(), TaskSpec("b", continuation_token()))
    assert decision.stale and decision.continued is None
    sched = Scheduler(_coded(build_shape("a>b b>c")), "s1", max_steps=1)
    [first] = sched.start().dispatch
    assert _refused(sched, first.token, TaskSpec("b", continuation_token()))[0] == \
        "the run ended"


def test_a_proposed_token_in_use_is_refused() -> None:
    sched, token = _started("a>b")
    taken = TaskSpec("b", continuation_token())
    sched.inflight[taken.token] = taken  # as if adopted before
    decision = sched.complete(token, TaskOutcome(), taken)
    assert decision.refused == "the proposed token is taken" and decision.continued is None
    assert [s.task_id for s in decision.dispatch] == ["b"]


def test_the_plain_chain_stops_at_forks_joins_groups_and_cycles() -> None:
    shape = _coded(build_shape("a>b b>c c>d c>e"))
    assert plain_chain(shape, "a", {"b": 2}) == [("b", 2), ("c", 0)]
    assert plain_chain(shape, "a", {}, limit=1) == [("b", 0)]
    assert plain_chain(_coded(build_shape("a>j b>j")), "a", {}) == []
    assert plain_chain(_coded(build_shape("a>g g>d", groups={"g": ["x"]})), "a", {}) == []
    assert plain_chain(_coded(build_shape("a>x", groups={"g": ["x"]})), "a", {}) == []
    loop = _coded(build_shape("a>b b>c c>b"))
    assert plain_chain(loop, "a", {}) == []  # b's predecessors are a and c
    group = _coded(build_shape("g>d d>e", groups={"g": ["x", "y"]}))
    assert plain_chain(group, "g", {"d": 1}) == [("d", 1), ("e", 0)]
    no_code = build_shape("a>b")
    assert plain_chain(no_code, "a", {}) == []  # added while running: code of the run


def test_a_whole_group_is_every_member_once_at_its_first_attempt() -> None:
    shape = _coded(build_shape("g>d", groups={"g": ["x", "y"]}))
    x, y = TaskSpec("x", "e.1", group="g"), TaskSpec("y", "e.2", group="g")
    assert whole_group(shape, [x, y]) == "g" and whole_group(shape, [y, x]) == "g"
    assert whole_group(shape, [x]) is None  # the group split over jobs
    assert whole_group(shape, [x, x]) is None
    assert whole_group(shape, [x, y.evolve(attempt=2)]) is None  # a retry
    assert whole_group(shape, [x, TaskSpec("d", "e.3")]) is None
    assert whole_group(shape, [TaskSpec("d", "e.3")]) is None


def test_continuation_tokens_are_recognisable_and_unique() -> None:
    tokens = {continuation_token() for _ in range(1000)}
    assert len(tokens) == 1000 and all(is_continuation_token(t) for t in tokens)
    assert not is_continuation_token("abcx123.4")
