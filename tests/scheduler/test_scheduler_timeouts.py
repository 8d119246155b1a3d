"""Scheduler.timed_out: a timeout is a failure retried per the task's policy; once the
retries are spent the run fails with TaskTimeoutError."""

from __future__ import annotations

from graflow_dist.errors import TaskExecutionError, TaskTimeoutError
from graflow_dist.scheduler import (
    GroupPolicySpec,
    RetrySettings,
    RunStatus,
    Scheduler,
    TaskOutcome,
)

OK = TaskOutcome()


def new(shape) -> Scheduler:  # noqa: ANN001
    return Scheduler(shape, "sess", epoch="e1")


def test_a_timeout_without_retries_fails_the_run_with_task_timeout_error(shape_of) -> None:
    sched = new(shape_of("a>b"))
    token = sched.start().dispatch[0].token
    decision = sched.timed_out(token, 2.5, now=100.0)
    assert decision.end is not None and decision.end.status is RunStatus.FAILED
    error = decision.end.error
    assert isinstance(error, TaskTimeoutError) and isinstance(error, TaskExecutionError)
    assert (error.task_id, error.timeout_s, error.attempts, error.session_id) == (
        "a", 2.5, 1, "sess")
    assert "timed out after 2.5 s" in str(error)
    assert sched.steps == 1  # an attempt that ended counts as a step, like a failure


def test_timeouts_use_the_retry_budget_then_fail(shape_of, ready) -> None:
    sched = new(shape_of("a>b", retry={"a": RetrySettings(max_retries=1)}))
    first = sched.start().dispatch[0]
    retry = sched.timed_out(first.token, 1.0, now=10.0)
    assert retry.end is None
    (again,) = retry.dispatch
    assert again.attempt == 2 and again.token != first.token
    decision = sched.timed_out(again.token, 1.0, now=12.0)
    assert isinstance(decision.end.error, TaskTimeoutError)
    assert decision.end.error.attempts == 2 and "after 2 attempts" in str(decision.end.error)


def test_a_retried_timeout_can_still_succeed(shape_of, ready) -> None:
    sched = new(shape_of("a>b", retry={"a": RetrySettings(max_retries=1)}))
    first = sched.start().dispatch[0]
    again = sched.timed_out(first.token, 1.0).dispatch[0]
    assert list(ready(sched.complete(again.token, OK))) == ["b"]


def test_a_timeout_with_backoff_waits_like_any_retry(shape_of) -> None:
    sched = new(shape_of(nodes="a", retry={"a": RetrySettings(max_retries=1,
                                                               initial_interval=5.0)}))
    token = sched.start().dispatch[0].token
    decision = sched.timed_out(token, 1.0, now=100.0)
    assert decision.dispatch == [] and sched.next_due() == 105.0


def test_a_timed_out_member_of_a_best_effort_group_is_a_tolerated_failure(
        shape_of, ready) -> None:
    shape = shape_of("g>d", groups={"g": ["x", "y"]},
                     policies={"g": GroupPolicySpec("best_effort")})
    sched = new(shape)
    tokens = ready(sched.start())
    sched.timed_out(tokens["x"], 3.0)
    after = sched.complete(tokens["y"], OK)
    assert list(ready(after)) == ["d"]
    assert "timed out after 3 s" in sched.groups["g"].failed["x"]


def test_a_stale_timeout_report_changes_nothing(shape_of, ready) -> None:
    sched = new(shape_of("a>b"))
    token = ready(sched.start())["a"]
    sched.complete(token, OK)  # finished just before its process was killed
    decision = sched.timed_out(token, 1.0)
    assert decision.stale and decision.end is None and sched.end is None
