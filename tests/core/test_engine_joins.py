"""Joins in process: a node with several predecessors runs once, after all of them;
parallel groups join at the group node under their policy."""

from __future__ import annotations

import pytest

from graflow_dist import (
    AtLeastNGroupPolicy,
    CriticalGroupPolicy,
    TaskExecutionContext,
    task,
    workflow,
)
from graflow_dist.errors import ParallelGroupError


def test_group_then_successor_joins_once() -> None:
    with workflow("w") as wf:

        @task(inject_context=True)
        def b(ctx: TaskExecutionContext) -> str:
            ctx.get_channel().append("runs", "b")
            return "B"

        @task(inject_context=True)
        def c(ctx: TaskExecutionContext) -> str:
            ctx.get_channel().append("runs", "c")
            return "C"

        @task(inject_context=True)
        def d(ctx: TaskExecutionContext, b: str, c: str) -> str:
            ctx.get_channel().append("runs", "d")
            return b + c

        (b | c) >> d

    result, ctx = wf.execute(ret_context=True)
    assert result == "BC"
    assert ctx.channel.get("runs") == ["b", "c", "d"]
    assert ctx.completed_tasks == ["b", "c", "ParallelGroup_1", "d"]


def test_diamond_runs_the_join_once_after_both_branches() -> None:
    with workflow("w") as wf:

        @task(inject_context=True)
        def top(ctx: TaskExecutionContext) -> None:
            ctx.get_channel().append("runs", "top")

        @task(inject_context=True)
        def left(ctx: TaskExecutionContext) -> None:
            ctx.get_channel().append("runs", "left")

        @task(inject_context=True)
        def right(ctx: TaskExecutionContext) -> None:
            ctx.get_channel().append("runs", "right")

        @task(inject_context=True)
        def bottom(ctx: TaskExecutionContext) -> list[str]:
            ctx.get_channel().append("runs", "bottom")
            return ctx.get_channel().get("runs")

        top >> left >> bottom
        top >> right >> bottom

    runs = wf.execute()
    assert runs.count("bottom") == 1
    assert runs[-1] == "bottom" and set(runs[1:3]) == {"left", "right"}


def _group_workflow(policy, failing: set[str]):
    wf = workflow("groups")
    with wf:
        members = []
        for name in ("m1", "m2", "m3"):

            def body(name: str = name) -> str:
                if name in failing:
                    raise RuntimeError(f"{name} broke")
                return name

            members.append(task(id=name)(body))

        @task
        def after() -> str:
            return "after ran"

        group = members[0] | members[1] | members[2]
        group.with_execution(policy=policy) >> after
    return wf


def test_strict_group_failure_raises_parallel_group_error() -> None:
    wf = _group_workflow("strict", {"m2"})
    with pytest.raises(ParallelGroupError) as info:
        wf.execute()
    assert info.value.failed == {"m2": "RuntimeError: m2 broke"}
    assert "ParallelGroup_1" in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)  # m2's own exception, though
    assert str(info.value.__cause__) == "m2 broke"  # m3 finished after it


def test_best_effort_group_continues() -> None:
    assert _group_workflow("best_effort", {"m1", "m3"}).execute() == "after ran"


def test_at_least_n_group() -> None:
    assert _group_workflow(AtLeastNGroupPolicy(2), {"m1"}).execute() == "after ran"
    with pytest.raises(ParallelGroupError, match="at_least_n"):
        _group_workflow(AtLeastNGroupPolicy(2), {"m1", "m2"}).execute()


def test_critical_group() -> None:
    assert _group_workflow(CriticalGroupPolicy(["m1"]), {"m2", "m3"}).execute() == "after ran"
    with pytest.raises(ParallelGroupError, match="critical"):
        _group_workflow(CriticalGroupPolicy(["m1"]), {"m1"}).execute()
