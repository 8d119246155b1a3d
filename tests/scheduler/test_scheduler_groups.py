"""Parallel groups in the pure scheduler: the join and the four policies."""

from __future__ import annotations

import pytest
from scheduler_shapes import build_shape

from graflow_dist.errors import ParallelGroupError
from graflow_dist.scheduler import (
    GroupPolicySpec,
    RetrySettings,
    RunStatus,
    Scheduler,
    TaskOutcome,
)
from graflow_dist.scheduler.frontier import GroupProgress
from graflow_dist.scheduler.groups import group_satisfied

OK = TaskOutcome()
STRICT = GroupPolicySpec()
BEST_EFFORT = GroupPolicySpec("best_effort")


def group_run(shape_of, policy: GroupPolicySpec = STRICT, **kwargs) -> tuple[Scheduler, dict]:
    """``a >> (x | y | z) >> d`` started, with ``a`` completed: the members are ready."""
    shape = shape_of("a>g g>d", groups={"g": ["x", "y", "z"]}, policies={"g": policy}, **kwargs)
    sched = Scheduler(shape, "sess", epoch="e")
    (a,) = sched.start().dispatch
    members = {s.task_id: s for s in sched.complete(a.token, OK).dispatch}
    return sched, members


def finish(sched: Scheduler, members: dict, failures: set[str]):
    """Complete the members in order, failing those in ``failures``; the last decision."""
    decision = None
    for member, spec in members.items():
        if member in failures:
            decision = sched.fail(spec.token, f"{member} broke")
        else:
            decision = sched.complete(spec.token, OK)
    return decision


def test_members_start_when_the_group_is_ready(shape_of) -> None:
    sched, members = group_run(shape_of)
    assert set(members) == {"x", "y", "z"}
    assert all(spec.group == "g" for spec in members.values())
    assert "g" not in sched.completed


def test_group_is_a_root_when_it_has_no_predecessors(shape_of) -> None:
    sched = Scheduler(shape_of("g>d", groups={"g": ["x", "y"]}), "s", epoch="e")
    assert {s.task_id for s in sched.start().dispatch} == {"x", "y"}


def test_successor_waits_for_every_member_and_runs_once(shape_of) -> None:
    sched, members = group_run(shape_of)
    assert sched.complete(members["x"].token, OK).dispatch == []
    assert sched.complete(members["y"].token, OK).dispatch == []
    last = sched.complete(members["z"].token, OK)
    assert [s.task_id for s in last.dispatch] == ["d"]
    assert last.completed == ["z", "g"]
    assert sched.complete(last.dispatch[0].token, OK).end.status is RunStatus.COMPLETED
    assert list(sched.completed) == ["a", "x", "y", "z", "g", "d"]


def test_strict_fails_once_all_members_finished(shape_of) -> None:
    sched, members = group_run(shape_of)
    first = sched.fail(members["x"].token, "x broke")
    assert first.end is None  # siblings still running
    sched.complete(members["y"].token, OK)
    last = sched.complete(members["z"].token, OK)
    assert last.end.status is RunStatus.FAILED
    error = last.end.error
    assert isinstance(error, ParallelGroupError)
    assert error.group_id == "g" and error.failed == {"x": "x broke"}
    assert "'g'" in str(error) and "strict" in str(error) and "x broke" in str(error)
    assert last.dispatch == [] and "d" not in sched.completed


def test_best_effort_releases_successors_despite_failures(shape_of) -> None:
    sched, members = group_run(shape_of, BEST_EFFORT)
    last = finish(sched, members, {"x", "y"})
    assert [s.task_id for s in last.dispatch] == ["d"]
    assert sched.groups["g"].failed == {"x": "x broke", "y": "y broke"}


def test_best_effort_with_every_member_failing_still_continues(shape_of) -> None:
    sched, members = group_run(shape_of, BEST_EFFORT)
    last = finish(sched, members, {"x", "y", "z"})
    assert [s.task_id for s in last.dispatch] == ["d"]


@pytest.mark.parametrize(
    ("failures", "succeeds"),
    [(set(), True), ({"x"}, True), ({"x", "y"}, False), ({"x", "y", "z"}, False)],
)
def test_at_least_n(shape_of, failures: set[str], succeeds: bool) -> None:
    sched, members = group_run(shape_of, GroupPolicySpec("at_least_n", min_success=2))
    last = finish(sched, members, failures)
    if succeeds:
        assert [s.task_id for s in last.dispatch] == ["d"]
        assert last.end is None
    else:
        assert last.end.status is RunStatus.FAILED
        assert isinstance(last.end.error, ParallelGroupError)
        assert "at_least_n(2)" in str(last.end.error)


@pytest.mark.parametrize(
    ("failures", "succeeds"),
    [({"y", "z"}, True), ({"x"}, False), ({"x", "y", "z"}, False), (set(), True)],
)
def test_critical(shape_of, failures: set[str], succeeds: bool) -> None:
    sched, members = group_run(shape_of, GroupPolicySpec("critical", critical_tasks=("x",)))
    last = finish(sched, members, failures)
    if succeeds:
        assert [s.task_id for s in last.dispatch] == ["d"]
    else:
        assert last.end.status is RunStatus.FAILED
        assert "critical(x)" in str(last.end.error)
        assert "x" in last.end.error.failed


def test_member_retries_before_counting_as_failed(shape_of) -> None:
    sched, members = group_run(shape_of, retry={"x": RetrySettings(max_retries=1)})
    (retry,) = sched.fail(members["x"].token, "flaky").dispatch
    assert retry.group == "g" and retry.attempt == 2
    assert sched.groups["g"].failed == {}
    sched.complete(members["y"].token, OK)
    sched.complete(members["z"].token, OK)
    last = sched.complete(retry.token, OK)
    assert [s.task_id for s in last.dispatch] == ["d"]


def test_group_join_with_another_predecessor(shape_of) -> None:
    shape = shape_of("g>d b>d", groups={"g": ["x", "y"]})
    sched = Scheduler(shape, "s", epoch="e")
    specs = {s.task_id: s for s in sched.start().dispatch}
    assert set(specs) == {"x", "y", "b"}
    sched.complete(specs["x"].token, OK)
    assert sched.complete(specs["y"].token, OK).dispatch == []  # d waits for b
    assert [s.task_id for s in sched.complete(specs["b"].token, OK).dispatch] == ["d"]


def test_group_satisfied_rules() -> None:
    progress = GroupProgress(succeeded=["x"], failed={"y": "boom"})
    assert not group_satisfied(STRICT, progress)
    assert group_satisfied(BEST_EFFORT, progress)
    assert group_satisfied(GroupPolicySpec("at_least_n", min_success=1), progress)
    assert not group_satisfied(GroupPolicySpec("at_least_n", min_success=2), progress)
    assert group_satisfied(GroupPolicySpec("critical", critical_tasks=("x",)), progress)
    assert not group_satisfied(GroupPolicySpec("critical", critical_tasks=("y",)), progress)


def test_the_only_sink_is_the_task_that_ends_the_graph() -> None:
    assert build_shape("a>g g>j", groups={"g": ["x", "y"]}).only_sink() == "j"
    assert build_shape("a>b a>c").only_sink() == ""  # two ends
    assert build_shape("a>g", groups={"g": ["x", "y"]}).only_sink() == ""  # a group ends it
    assert build_shape("a>b b>a").only_sink() == ""  # a cycle: no end
    assert build_shape(nodes="a").only_sink() == "a"
