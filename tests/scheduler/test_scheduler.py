"""The pure scheduler: lifecycle of a run, one event at a time."""

from __future__ import annotations

import pytest

from graflow_dist.errors import (
    CycleLimitExceededError,
    DeadLetterError,
    DeadlockError,
    MaxStepsExceededError,
    RetryLimitExceededError,
    TaskExecutionError,
    UnknownTaskError,
    WorkflowCancelledError,
)
from graflow_dist.scheduler import (
    CheckpointRequest,
    GroupPolicySpec,
    NextTask,
    NodeShape,
    RetrySettings,
    RunStatus,
    Scheduler,
    TaskOutcome,
)

OK = TaskOutcome()


def new(shape, **kwargs) -> Scheduler:
    return Scheduler(shape, "sess", epoch="e", **kwargs)


# --- start ---------------------------------------------------------------------------


def test_start_dispatches_every_root(shape_of, ready) -> None:
    sched = new(shape_of("a>c b>c"))
    decision = sched.start()
    assert set(ready(decision)) == {"a", "b"}
    assert decision.end is None
    assert {s.task_id for s in sched.pending} == {"a", "b"}


def test_start_at_explicit_node(shape_of, ready) -> None:
    sched = new(shape_of("a>b b>c"))
    assert list(ready(sched.start(["b"]))) == ["b"]


def test_start_at_unknown_node_raises(shape_of) -> None:
    sched = new(shape_of("a>b"))
    with pytest.raises(UnknownTaskError, match="'nope'"):
        sched.start(["nope"])


def test_empty_graph_completes_at_once(shape_of) -> None:
    decision = new(shape_of()).start()
    assert decision.end is not None and decision.end.status is RunStatus.COMPLETED


def test_tokens_are_unique_and_carry_the_epoch(shape_of) -> None:
    sched = new(shape_of(nodes="a b c"))
    tokens = [s.token for s in sched.start().dispatch]
    assert len(set(tokens)) == 3
    assert all(t.startswith("e.") for t in tokens)


# --- complete ------------------------------------------------------------------------


def test_chain_runs_in_order_and_completes(shape_of, ready) -> None:
    sched = new(shape_of("a>b b>c"))
    tok = ready(sched.start())
    d1 = sched.complete(tok["a"], OK)
    assert list(ready(d1)) == ["b"]
    assert d1.completed == ["a"]
    d2 = sched.complete(ready(d1)["b"], OK)
    d3 = sched.complete(ready(d2)["c"], OK)
    assert d3.end is not None and d3.end.status is RunStatus.COMPLETED
    assert d3.end.error is None
    assert list(sched.completed) == ["a", "b", "c"]
    assert sched.steps == 3
    assert sched.pending == []


def test_and_join_runs_once_after_all_predecessors(shape_of, ready) -> None:
    sched = new(shape_of("a>c b>c"))
    tok = ready(sched.start())
    first = sched.complete(tok["a"], OK)
    assert first.dispatch == []  # c still waits for b
    second = sched.complete(tok["b"], OK)
    assert list(ready(second)) == ["c"]
    end = sched.complete(ready(second)["c"], OK)
    assert end.end is not None and end.end.status is RunStatus.COMPLETED
    assert list(sched.completed).count("c") == 1


def test_diamond_join_runs_once(shape_of, ready) -> None:
    sched = new(shape_of("a>b a>c b>d c>d"))
    tok = ready(sched.start())
    fan = ready(sched.complete(tok["a"], OK))
    assert set(fan) == {"b", "c"}
    assert sched.complete(fan["c"], OK).dispatch == []
    join = ready(sched.complete(fan["b"], OK))
    assert list(join) == ["d"]
    assert sched.complete(join["d"], OK).end.status is RunStatus.COMPLETED
    assert sched.steps == 4


def test_join_ignores_predecessors_not_reachable_from_the_start(shape_of, ready) -> None:
    sched = new(shape_of("a>c b>c"))
    tok = ready(sched.start(["b"]))
    assert list(ready(sched.complete(tok["b"], OK))) == ["c"]


# --- fencing -------------------------------------------------------------------------


def test_unknown_token_is_stale_and_changes_nothing(shape_of) -> None:
    sched = new(shape_of("a>b"))
    sched.start()
    before = sched.snapshot().to_dict()
    decision = sched.complete("e.999", OK)
    assert decision.stale
    assert decision.dispatch == [] and decision.end is None
    assert sched.snapshot().to_dict() == before


def test_duplicate_completion_is_applied_once(shape_of, ready) -> None:
    sched = new(shape_of("a>b"))
    tok = ready(sched.start())
    assert not sched.complete(tok["a"], OK).stale
    again = sched.complete(tok["a"], OK)
    assert again.stale and again.dispatch == []
    assert sched.steps == 1
    assert [s.task_id for s in sched.pending] == ["b"]


def test_completion_of_a_crashed_attempt_is_fenced_off(shape_of, ready) -> None:
    sched = new(shape_of("a>b"))
    old = ready(sched.start())["a"]
    redispatch = ready(sched.crash(old, "lease expired", worker="w1"))
    assert redispatch["a"] != old
    late = sched.complete(old, OK)  # the lost worker finishes after all
    assert late.stale and late.dispatch == []
    assert "a" not in sched.completed
    assert list(ready(sched.complete(redispatch["a"], OK))) == ["b"]


def test_stale_failure_is_dropped(shape_of, ready) -> None:
    sched = new(shape_of("a>b"))
    tok = ready(sched.start())["a"]
    sched.complete(tok, OK)
    decision = sched.fail(tok, "boom")
    assert decision.stale and decision.end is None
    assert sched.end is None


# --- failures and retries -------------------------------------------------------------


def test_failure_without_retries_fails_the_run(shape_of, ready) -> None:
    sched = new(shape_of("a>b"))
    decision = sched.fail(ready(sched.start())["a"], "ValueError: bad")
    assert decision.end is not None and decision.end.status is RunStatus.FAILED
    error = decision.end.error
    assert type(error) is TaskExecutionError
    assert error.task_id == "a" and error.attempts == 1
    assert "'a'" in str(error) and "ValueError: bad" in str(error)
    assert decision.dispatch == []


def test_retry_without_delay_redispatches_at_once(shape_of, ready) -> None:
    sched = new(shape_of("a>b", retry={"a": RetrySettings(max_retries=2)}))
    first = sched.start().dispatch[0]
    retry = sched.fail(first.token, "flaky")
    assert retry.end is None
    (again,) = retry.dispatch
    assert again.task_id == "a" and again.attempt == 2 and again.token != first.token
    third = sched.fail(again.token, "flaky").dispatch[0]
    assert third.attempt == 3
    assert list(ready(sched.complete(third.token, OK))) == ["b"]


def test_retries_exhausted_raise_retry_limit(shape_of) -> None:
    sched = new(shape_of(nodes="a", retry={"a": RetrySettings(max_retries=2)}))
    spec = sched.start().dispatch[0]
    for _ in range(2):
        spec = sched.fail(spec.token, "still broken").dispatch[0]
    decision = sched.fail(spec.token, "still broken")
    assert decision.end.status is RunStatus.FAILED
    error = decision.end.error
    assert isinstance(error, RetryLimitExceededError)
    assert error.attempts == 3 and error.task_id == "a"
    assert "after 3 attempts" in str(error)


def test_not_retryable_failure_skips_the_retry_budget(shape_of) -> None:
    sched = new(shape_of(nodes="a", retry={"a": RetrySettings(max_retries=5)}))
    token = sched.start().dispatch[0].token
    custom = CycleLimitExceededError("a", 3)
    decision = sched.fail(token, "limit", error=custom, retryable=False)
    assert decision.end.status is RunStatus.FAILED
    assert decision.end.error is custom


def test_delayed_retry_is_released_when_due(shape_of, ready) -> None:
    settings = RetrySettings(max_retries=2, initial_interval=5.0, backoff_factor=2.0)
    sched = new(shape_of("a>b", retry={"a": settings}))
    token = ready(sched.start())["a"]
    decision = sched.fail(token, "flaky", now=100.0)
    assert decision.dispatch == [] and decision.end is None
    assert sched.next_due() == pytest.approx(105.0)
    assert sched.release_due(104.9) == []
    (due,) = sched.release_due(105.0)
    assert due.attempt == 2 and due.not_before == 0.0  # released: recorded as dispatched
    assert sched.next_due() is None
    # the second retry backs off twice as long
    sched.fail(due.token, "flaky", now=200.0)
    assert sched.next_due() == pytest.approx(210.0)
    (due2,) = sched.release_due(210.0)
    assert list(ready(sched.complete(due2.token, OK))) == ["b"]


def test_a_parked_retry_does_not_end_the_run(shape_of, ready) -> None:
    sched = new(shape_of(nodes="a b", retry={"a": RetrySettings(1, initial_interval=1.0)}))
    tok = ready(sched.start())
    sched.fail(tok["a"], "flaky", now=0.0)
    decision = sched.complete(tok["b"], OK)
    assert decision.end is None  # a is parked, not forgotten
    assert [s.task_id for s in sched.pending] == ["a"]


def test_delayed_retry_token_is_not_completable_before_release(shape_of) -> None:
    sched = new(shape_of(nodes="a", retry={"a": RetrySettings(1, initial_interval=1.0)}))
    token = sched.start().dispatch[0].token
    sched.fail(token, "flaky", now=0.0)
    (parked,) = sched.delayed.values()
    assert sched.complete(parked.token, OK).stale


def test_retry_delay_is_capped_and_jitter_is_deterministic() -> None:
    capped = RetrySettings(5, initial_interval=1.0, backoff_factor=10.0, max_interval=30.0)
    assert [capped.delay_before(k) for k in range(3)] == [1.0, 10.0, 30.0]
    jittered = RetrySettings(5, initial_interval=2.0, jitter=True)
    delay = jittered.delay_before(0, "e.7")
    assert 1.0 <= delay < 3.0
    assert jittered.delay_before(0, "e.7") == delay


# --- crashes -------------------------------------------------------------------------


def test_crash_redispatches_without_using_the_retry_budget(shape_of) -> None:
    sched = new(shape_of(nodes="a"), crash_limit=3)
    spec = sched.start().dispatch[0]
    (again,) = sched.crash(spec.token, "worker lost", worker="w1").dispatch
    assert again.attempt == 1 and again.crashes == 1 and again.token != spec.token


def test_crash_limit_dead_letters_the_task(shape_of) -> None:
    sched = new(shape_of(nodes="a"), crash_limit=2)
    spec = sched.start().dispatch[0]
    spec = sched.crash(spec.token, "lost", worker="w1").dispatch[0]
    decision = sched.crash(spec.token, "lost again", worker="w2")
    assert decision.end.status is RunStatus.FAILED
    error = decision.end.error
    assert isinstance(error, DeadLetterError)
    assert error.task_id == "a" and error.crashes == 2 and error.workers == ["w1", "w2"]
    assert "lost again" in str(error)


def test_hand_back_redispatches_using_neither_budget(shape_of) -> None:
    sched = new(shape_of(nodes="a"), crash_limit=1)
    spec = sched.start().dispatch[0]
    for _ in range(3):  # a crash limit of 1 would have dead-lettered it at once
        (again,) = sched.hand_back(spec.token).dispatch
        assert (again.attempt, again.crashes) == (1, 0) and again.token != spec.token
        assert sched.hand_back(spec.token).stale  # the old token is fenced off
        spec = again
    assert sched.crash_workers == {}


# --- cancel and terminate -------------------------------------------------------------


def test_cancel_from_outside_ends_the_run_and_fences_late_events(shape_of, ready) -> None:
    sched = new(shape_of("a>b"))
    tok = ready(sched.start())
    decision = sched.cancel("user asked")
    assert decision.end.status is RunStatus.CANCELLED
    assert isinstance(decision.end.error, WorkflowCancelledError)
    assert "user asked" in str(decision.end.error)
    assert sched.complete(tok["a"], OK).stale
    assert sched.cancel("twice").end is None  # already over


def test_task_cancel_does_not_complete_the_task(shape_of, ready) -> None:
    sched = new(shape_of("a>b"))
    decision = sched.complete(ready(sched.start())["a"], TaskOutcome(cancel="bad data"))
    assert decision.end.status is RunStatus.CANCELLED
    error = decision.end.error
    assert isinstance(error, WorkflowCancelledError) and error.task_id == "a"
    assert "a" not in sched.completed and sched.steps == 0
    assert decision.dispatch == []


def test_terminate_completes_the_task_and_skips_successors(shape_of, ready) -> None:
    sched = new(shape_of("a>b"))
    decision = sched.complete(ready(sched.start())["a"], TaskOutcome(terminate="done early"))
    assert decision.end.status is RunStatus.TERMINATED
    assert decision.end.error is None and decision.end.status.succeeded
    assert decision.dispatch == []
    assert list(sched.completed) == ["a"] and sched.steps == 1


def test_terminate_drops_work_still_pending_elsewhere(shape_of, ready) -> None:
    sched = new(shape_of(nodes="a b"))
    tok = ready(sched.start())
    decision = sched.complete(tok["a"], TaskOutcome(terminate="stop"))
    assert decision.end.status is RunStatus.TERMINATED
    assert sched.pending == [] and sched.snapshot().pending_tasks == []
    assert sched.complete(tok["b"], OK).stale  # a late sibling changes nothing
    assert list(sched.completed) == ["a"]


# --- max_steps -----------------------------------------------------------------------


def test_max_steps_exceeded_is_an_explicit_status(shape_of, ready) -> None:
    sched = new(shape_of("a>b b>c"), max_steps=2)
    d = sched.complete(ready(sched.start())["a"], OK)
    d = sched.complete(ready(d)["b"], OK)
    assert d.end.status is RunStatus.MAX_STEPS
    error = d.end.error
    assert isinstance(error, MaxStepsExceededError)
    assert error.max_steps == 2 and error.pending == ["c"]
    assert "max_steps=2" in str(error)


def test_finishing_exactly_at_max_steps_completes(shape_of, ready) -> None:
    sched = new(shape_of("a>b"), max_steps=2)
    d = sched.complete(ready(sched.start())["a"], OK)
    assert sched.complete(ready(d)["b"], OK).end.status is RunStatus.COMPLETED


def test_failed_attempts_count_as_steps(shape_of) -> None:
    sched = new(shape_of(nodes="a", retry={"a": RetrySettings(max_retries=10)}), max_steps=3)
    spec = sched.start().dispatch[0]
    spec = sched.fail(spec.token, "x").dispatch[0]
    spec = sched.fail(spec.token, "x").dispatch[0]
    decision = sched.fail(spec.token, "x")
    assert decision.end.status is RunStatus.MAX_STEPS


# --- cycles --------------------------------------------------------------------------


def test_iteration_reruns_the_task_and_holds_successors(shape_of) -> None:
    sched = new(shape_of("loop>after", max_cycles={"loop": 3}))
    spec = sched.start().dispatch[0]
    assert spec.cycle == 0
    d1 = sched.complete(spec.token, TaskOutcome(iterate=True))
    (again,) = d1.dispatch
    assert again.task_id == "loop" and again.cycle == 1
    assert sched.cycle_counts["loop"] == 1
    d2 = sched.complete(again.token, OK)  # the last iteration releases successors
    assert [s.task_id for s in d2.dispatch] == ["after"]
    assert sched.cycle_counts["loop"] == 2
    assert list(sched.completed).count("loop") == 1


def test_iteration_past_max_cycles_fails(shape_of) -> None:
    sched = new(shape_of("loop>after", max_cycles={"loop": 2}))
    spec = sched.start().dispatch[0]
    spec = sched.complete(spec.token, TaskOutcome(iterate=True)).dispatch[0]
    decision = sched.complete(spec.token, TaskOutcome(iterate=True))
    assert decision.end.status is RunStatus.FAILED
    error = decision.end.error
    assert isinstance(error, CycleLimitExceededError)
    assert error.task_id == "loop" and error.max_cycles == 2
    assert decision.dispatch == []


def test_retry_keeps_the_cycle(shape_of) -> None:
    sched = new(shape_of(nodes="loop", retry={"loop": RetrySettings(max_retries=1)}))
    spec = sched.start().dispatch[0]
    spec = sched.complete(spec.token, TaskOutcome(iterate=True)).dispatch[0]
    (retry,) = sched.fail(spec.token, "flaky").dispatch
    assert retry.cycle == 1 and retry.attempt == 2


# --- dynamic tasks -------------------------------------------------------------------


def test_next_task_new_node_runs_and_successors_still_run(shape_of, ready) -> None:
    sched = new(shape_of("a>b"))
    outcome = TaskOutcome(next_tasks=[NextTask("dyn", shape=NodeShape("dyn"))])
    decision = sched.complete(ready(sched.start())["a"], outcome)
    assert set(ready(decision)) == {"dyn", "b"}
    assert "dyn" in sched.shape.nodes


def test_next_task_goto_new_node_skips_successors(shape_of, ready) -> None:
    sched = new(shape_of("a>b"))
    outcome = TaskOutcome(next_tasks=[NextTask("dyn", goto=True, shape=NodeShape("dyn"))])
    decision = sched.complete(ready(sched.start())["a"], outcome)
    assert list(ready(decision)) == ["dyn"]
    end = sched.complete(ready(decision)["dyn"], OK)
    assert end.end.status is RunStatus.COMPLETED
    assert "b" not in sched.completed


def test_next_task_existing_node_jumps_there(shape_of, ready) -> None:
    sched = new(shape_of("a>b", nodes="z"))
    outcome = TaskOutcome(next_tasks=[NextTask("z")])  # no shape: already in the graph
    decision = sched.complete(ready(sched.start(["a"]))["a"], outcome)
    assert list(ready(decision)) == ["z"]
    assert sched.complete(ready(decision)["z"], OK).end.status is RunStatus.COMPLETED
    assert list(sched.completed) == ["a", "z"]


def test_next_task_existing_node_with_goto_false_still_jumps(shape_of, ready) -> None:
    sched = new(shape_of("a>b a>c"))
    outcome = TaskOutcome(next_tasks=[NextTask("c", goto=False)])
    decision = sched.complete(ready(sched.start())["a"], outcome)
    assert list(ready(decision)) == ["c"]


def test_next_task_new_group_with_a_join_brings_its_nodes(shape_of, ready) -> None:
    """A group built at run time: its members and its join arrive with it, the join
    runs once after every member, and the normal successors still run."""
    sched = new(shape_of("a>b"))
    group = NodeShape("g", successors=["j"], members=["m1", "m2"],
                      policy=GroupPolicySpec())
    nodes = (NodeShape("m1"), NodeShape("m2"), NodeShape("j", predecessors=["g"]))
    outcome = TaskOutcome(next_tasks=[NextTask("g", shape=group, nodes=nodes)])
    decision = sched.complete(ready(sched.start())["a"], outcome)
    assert set(ready(decision)) == {"m1", "m2", "b"}
    assert sched.journal.new_nodes == ["g", "m1", "m2", "j"]
    tokens = ready(decision)
    assert ready(sched.complete(tokens["m1"], OK)) == {}
    join = ready(sched.complete(tokens["m2"], OK))
    assert list(join) == ["j"]
    assert ready(sched.complete(tokens["b"], OK)) == {}
    assert sched.complete(join["j"], OK).end.status is RunStatus.COMPLETED
    assert [n for n in sched.completed if n in ("g", "j")] == ["g", "j"]


# --- checkpoints ---------------------------------------------------------------------


def test_checkpoint_request_comes_after_the_task_completed(shape_of, ready) -> None:
    sched = new(shape_of("a>b"))
    request = CheckpointRequest("ck/base", {"stage": "a"})
    decision = sched.complete(ready(sched.start())["a"], TaskOutcome(checkpoint=request))
    assert decision.checkpoint == request
    frontier = sched.snapshot()
    assert frontier.completed_tasks == ["a"]
    assert [s.task_id for s in frontier.pending_tasks] == ["b"]


# --- deadlock ------------------------------------------------------------------------


def test_cycle_behind_a_root_is_a_deadlock(shape_of, ready) -> None:
    sched = new(shape_of("a>b b>c c>b"))
    decision = sched.complete(ready(sched.start())["a"], OK)
    assert decision.end.status is RunStatus.FAILED
    error = decision.end.error
    assert isinstance(error, DeadlockError)
    assert error.blocked == ["b"]
    assert "'b'" in str(error) and "next_iteration" in str(error)


def test_graph_that_is_only_a_cycle_is_a_deadlock(shape_of) -> None:
    decision = new(shape_of("x>y y>x")).start()
    assert decision.end is not None and decision.end.status is RunStatus.FAILED
    error = decision.end.error
    assert isinstance(error, DeadlockError)
    assert error.blocked == ["x", "y"]
    assert "'x'" in str(error) and "'y'" in str(error)


def test_successor_of_a_jump_is_skipped_not_deadlocked(shape_of, ready) -> None:
    # b jumps away, so c (waiting on a and b) never runs; the run still completes.
    sched = new(shape_of("a>c b>c", nodes="z"))
    tok = ready(sched.start(["a", "b"]))
    sched.complete(tok["a"], OK)
    decision = sched.complete(tok["b"], TaskOutcome(next_tasks=[NextTask("z", goto=True)]))
    end = sched.complete(ready(decision)["z"], OK)
    assert end.end.status is RunStatus.COMPLETED
    assert "c" not in sched.completed


def test_next_task_naming_an_unknown_task_fails_the_run(shape_of, ready) -> None:
    from graflow_dist.errors import UnknownTaskError
    from graflow_dist.scheduler.events import NextTask

    sched = new(shape_of("a>b"))
    token = ready(sched.start())["a"]
    decision = sched.complete(token, TaskOutcome(next_tasks=[NextTask("ghost")]))
    assert decision.end is not None and decision.end.status is RunStatus.FAILED
    assert isinstance(decision.end.error, UnknownTaskError) and "ghost" in str(decision.end.error)
