"""requeue_task: a finished run's failed or dead-lettered task pending again, and a
scheduler restored from that frontier runs it and finishes the run."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from graflow_dist.errors import UnknownTaskError
from graflow_dist.scheduler import Decision, GraphShape, GroupPolicySpec, RunStatus
from graflow_dist.scheduler.events import TaskOutcome
from graflow_dist.scheduler.requeue import requeue_task
from graflow_dist.scheduler.state import Scheduler


def test_a_failed_task_runs_again_and_the_run_completes(
        shape_of: Callable[..., GraphShape], ready: Callable[[Decision], dict[str, str]]
) -> None:
    shape = shape_of("a>b b>c")
    sched = Scheduler(shape, "s")
    a = ready(sched.start())["a"]
    b = ready(sched.complete(a, TaskOutcome()))["b"]
    assert sched.fail(b, "boom").end.status is RunStatus.FAILED
    frontier = sched.snapshot()
    assert frontier.pending_tasks == []

    again = requeue_task(frontier, shape, "b")
    assert [s.task_id for s in again.pending_tasks] == ["b"]
    assert frontier.pending_tasks == []  # the original is left alone

    restored = Scheduler.restore(shape, again)
    retried = ready(restored.resume(reissue=True))
    assert list(retried) == ["b"]
    c = ready(restored.complete(retried["b"], TaskOutcome()))["c"]
    assert restored.complete(c, TaskOutcome()).end.status is RunStatus.COMPLETED
    assert list(restored.completed) == ["a", "b", "c"]


def test_a_failed_group_member_goes_back_into_its_group(
        shape_of: Callable[..., GraphShape], ready: Callable[[Decision], dict[str, str]]
) -> None:
    shape = shape_of("g>d", groups={"g": ["x", "y"]})
    sched = Scheduler(shape, "s")
    fan = ready(sched.start())
    sched.complete(fan["x"], TaskOutcome())
    assert sched.fail(fan["y"], "boom").end.status is RunStatus.FAILED

    again = requeue_task(sched.snapshot(), shape, "y")
    assert again.groups["g"].outstanding == ["y"] and again.groups["g"].failed == {}
    restored = Scheduler.restore(shape, again)
    y = ready(restored.resume(reissue=True))["y"]
    d = ready(restored.complete(y, TaskOutcome()))["d"]
    assert restored.complete(d, TaskOutcome()).end.status is RunStatus.COMPLETED


def test_a_member_of_a_group_that_passed_runs_alone(
        shape_of: Callable[..., GraphShape], ready: Callable[[Decision], dict[str, str]]
) -> None:
    shape = shape_of("g>d", groups={"g": ["x", "y"]},
                     policies={"g": GroupPolicySpec("best_effort")})
    sched = Scheduler(shape, "s")
    fan = ready(sched.start())
    sched.complete(fan["x"], TaskOutcome())
    d = ready(sched.fail(fan["y"], "boom"))["d"]
    assert sched.complete(d, TaskOutcome()).end.status is RunStatus.COMPLETED

    again = requeue_task(sched.snapshot(), shape, "y")
    (spec,) = again.pending_tasks
    assert spec.group is None
    restored = Scheduler.restore(shape, again)
    y = ready(restored.resume(reissue=True))["y"]
    decision = restored.complete(y, TaskOutcome())
    assert decision.dispatch == [] and decision.end.status is RunStatus.COMPLETED


def test_a_dead_lettered_task_keeps_its_spec_with_a_fresh_crash_budget(
        shape_of: Callable[..., GraphShape], ready: Callable[[Decision], dict[str, str]]
) -> None:
    shape = shape_of("a>b")
    sched = Scheduler(shape, "s", crash_limit=1)
    a = ready(sched.start())["a"]
    assert sched.crash(a, "lost", worker="w").end.status is RunStatus.FAILED
    (kept,) = sched.snapshot().pending_tasks
    assert kept.crashes == 1

    (spec,) = requeue_task(sched.snapshot(), shape, "a").pending_tasks
    assert (spec.task_id, spec.crashes, spec.attempt) == ("a", 0, 1)


def test_only_tasks_of_the_graph_can_be_requeued(shape_of: Callable[..., GraphShape]) -> None:
    shape = shape_of("g>d", groups={"g": ["x"]})
    frontier = Scheduler(shape, "s").snapshot()
    with pytest.raises(UnknownTaskError, match="'nope'"):
        requeue_task(frontier, shape, "nope")
    with pytest.raises(UnknownTaskError, match="'g'"):
        requeue_task(frontier, shape, "g")
