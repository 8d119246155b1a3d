"""next_task with parallel groups and chains built inside a running task."""

from __future__ import annotations

from pathlib import Path

import pytest

from graflow_dist import (
    AtLeastNGroupPolicy,
    CheckpointManager,
    TaskExecutionContext,
    chain,
    parallel,
    task,
    workflow,
)
from graflow_dist.core.workflow import WorkflowContext, current_workflow_context
from graflow_dist.errors import GraphError, ParallelGroupError, TaskExecutionError


@task(inject_context=True)
def square(ctx: TaskExecutionContext, x: int) -> int:
    ctx.get_channel().append("ran", ctx.task_id)
    return x * x


@task(inject_context=True)
def summarize(ctx: TaskExecutionContext, names: list[str]) -> int:
    ctx.get_channel().append("ran", ctx.task_id)
    return sum(ctx.get_result(n) for n in names)


def planned(build, *, successor: bool = True, goto: bool = False) -> WorkflowContext:
    """``plan >> after``; ``plan`` calls ``ctx.next_task(build(), goto=goto)``."""
    with workflow("dynamic") as wf:

        @task(inject_context=True)
        def plan(ctx: TaskExecutionContext) -> str:
            ctx.get_channel().append("ran", "plan")
            ctx.next_task(build(), goto=goto)
            return "planned"

        if successor:

            @task(inject_context=True)
            def after(ctx: TaskExecutionContext) -> str:
                ctx.get_channel().append("ran", "after")
                return "after"

            plan >> after
    return wf


def test_a_group_built_in_a_task_runs_and_the_successors_still_run() -> None:
    wf = planned(lambda: parallel(square(task_id="a", x=2), square(task_id="b", x=3)))
    _, ctx = wf.execute(ret_context=True)
    assert sorted(ctx.channel.get("ran")) == ["a", "after", "b", "plan"]
    assert (ctx.get_result("a"), ctx.get_result("b")) == (4, 9)
    assert set(ctx.completed_tasks) == {"plan", "a", "b", "plan_ParallelGroup_1", "after"}
    # The group lives in the run's graph, not in the workflow that defined plan.
    assert "plan_ParallelGroup_1" in ctx.graph.nodes
    assert list(wf.graph.nodes) == ["plan", "after"]
    assert "plan_ParallelGroup_1" not in current_workflow_context().graph.nodes
    # So running the workflow again builds and runs a new group, as the first time.
    _, again = wf.execute(ret_context=True)
    assert sorted(again.channel.get("ran")) == ["a", "after", "b", "plan"]


def test_group_then_join_runs_the_join_once_after_every_member() -> None:
    def build():
        group = parallel(square(task_id="a", x=2), square(task_id="b", x=3),
                         square(task_id="c", x=4))
        return group >> summarize(task_id="total", names=["a", "b", "c"])

    result, ctx = planned(build, successor=False).execute(ret_context=True)
    ran = ctx.channel.get("ran")
    assert ran.count("total") == 1 and ran[-1] == "total"
    assert result == 29 == ctx.get_result("total")
    assert ctx.graph.predecessors("total") == ["plan_ParallelGroup_1"]
    assert ctx.completed_tasks[-2:] == ["plan_ParallelGroup_1", "total"]


def test_a_chain_built_in_a_task_runs_in_order() -> None:
    def build():
        return chain(square(task_id="first", x=1), square(task_id="second", x=2),
                     summarize(task_id="last", names=["first", "second"]))

    result, ctx = planned(build, successor=False).execute(ret_context=True)
    assert ctx.channel.get("ran") == ["plan", "first", "second", "last"]
    assert result == 5


def test_goto_with_a_group_skips_the_successors() -> None:
    wf = planned(lambda: parallel(square(task_id="a", x=1), square(task_id="b", x=1)),
                 goto=True)
    _, ctx = wf.execute(ret_context=True)
    assert "after" not in ctx.channel.get("ran")


def test_a_dynamic_group_keeps_its_policy_and_backend() -> None:
    @task
    def fails() -> None:
        raise ValueError("flaky")

    def build():
        return parallel(square(task_id="a", x=1), square(task_id="b", x=2), fails).\
            with_execution(backend="threading", policy=AtLeastNGroupPolicy(2))

    _, ctx = planned(build).execute(ret_context=True)
    assert "after" in ctx.channel.get("ran")

    def strict():
        return parallel(square(task_id="a", x=1), fails)

    with pytest.raises(ParallelGroupError, match="plan_ParallelGroup_1"):
        planned(strict).execute()


def test_each_iteration_gets_its_own_group() -> None:
    with workflow("loop") as wf:

        @task(inject_context=True, max_cycles=3)
        def rounds(ctx: TaskExecutionContext) -> None:
            n = ctx.cycle_count
            ctx.next_task(parallel(square(task_id=f"r{n}a", x=n), square(task_id=f"r{n}b", x=n)))
            if n < 3:
                ctx.next_iteration()

    _, ctx = wf.execute(ret_context=True)
    groups = [n for n in ctx.completed_tasks if "ParallelGroup" in n]
    assert groups == ["rounds_ParallelGroup_1", "rounds_2_ParallelGroup_1",
                      "rounds_3_ParallelGroup_1"]
    assert ctx.get_result("r3b") == 9


def test_a_failed_attempt_adds_nothing_and_the_retry_builds_again() -> None:
    with workflow("retry") as wf:

        @task(inject_context=True, max_retries=1)
        def flaky(ctx: TaskExecutionContext) -> str:
            ctx.next_task(parallel(square(task_id="a", x=5), square(task_id="b", x=6)))
            if ctx.attempt == 1:
                raise RuntimeError("first attempt fails after planning")
            return "ok"

    _, ctx = wf.execute(ret_context=True)
    assert sorted(ctx.channel.get("ran")) == ["a", "b"]
    assert "flaky_ParallelGroup_1" in ctx.completed_tasks


def test_a_checkpoint_inside_a_dynamic_group_resumes_with_its_join(tmp_path: Path) -> None:
    base = tmp_path / "mid"

    @task(inject_context=True)
    def checkpointing(ctx: TaskExecutionContext) -> int:
        ctx.get_channel().append("ran", ctx.task_id)
        ctx.checkpoint(path=str(base))
        return 100

    def build():
        group = parallel(checkpointing, square(task_id="b", x=3))
        return group >> summarize(task_id="total", names=["checkpointing", "b"])

    result, _ = planned(build, successor=False).execute(ret_context=True)
    assert result == 109
    resumed, _meta = CheckpointManager.resume_from_checkpoint(f"{base}.pkl")
    assert [s.task_id for s in resumed.pending_tasks] == ["b"]
    assert resumed.graph.successors("plan_ParallelGroup_1") == ["total"]
    assert resumed.execute() == 109
    ran = resumed.channel.get("ran")
    assert ran[-2:] == ["b", "total"] and ran.count("total") == 1


def test_a_chain_starting_at_an_existing_task_is_refused() -> None:
    with workflow("jump") as wf:

        @task
        def existing() -> int:
            return 1

        @task(inject_context=True)
        def plan(ctx: TaskExecutionContext) -> None:
            ctx.next_task(ctx.graph.get_node("existing") >> square(task_id="new", x=1))

        plan >> existing

    with pytest.raises(TaskExecutionError) as raised:
        wf.execute("plan")
    assert isinstance(raised.value.__cause__, GraphError)
    assert "the chain starts at 'existing', which is already in the workflow" in \
        str(raised.value)
