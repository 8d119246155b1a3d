"""Control flow from inside tasks: iterations, dynamic tasks, terminate and cancel."""

from __future__ import annotations

from typing import Any

import pytest

from graflow_dist import TaskExecutionContext, TaskWrapper, WorkflowEngine, task, workflow
from graflow_dist.errors import (
    CycleLimitExceededError,
    DeadlockError,
    MaxStepsExceededError,
    TaskExecutionError,
    WorkflowCancelledError,
)
from graflow_dist.exceptions import GraflowWorkflowCanceledError
from graflow_dist.scheduler import DEFAULT_MAX_CYCLES, RunStatus


def log(ctx: TaskExecutionContext, entry: Any) -> None:
    ctx.get_channel().append("log", entry)


# --- next_iteration ----------------------------------------------------------------------


def test_next_iteration_passes_data_and_holds_successors() -> None:
    with workflow("w") as wf:

        @task(inject_context=True, max_cycles=5)
        def loop(ctx: TaskExecutionContext, data: int | None = None) -> int:
            log(ctx, (ctx.cycle_count, data))
            value = (data or 0) + 10
            if value < 30:
                ctx.next_iteration(value)
            return value

        @task(inject_context=True)
        def after(ctx: TaskExecutionContext, loop: int) -> str:
            log(ctx, "after")
            return f"after {loop}"

        loop >> after

    result, ctx = wf.execute(ret_context=True)
    assert result == "after 30"
    assert ctx.channel.get("log") == [(1, None), (2, 10), (3, 20), "after"]
    assert ctx.cycle_counts["loop"] == 3
    assert ctx.completed_tasks == ["loop", "after"]
    assert ctx.get_result("loop") == 30  # the last iteration's result


def test_cycle_limit_exceeded() -> None:
    runs: list[int] = []
    with workflow("w") as wf:

        @task(inject_context=True, max_cycles=3)
        def forever(ctx: TaskExecutionContext) -> None:
            runs.append(ctx.cycle_count)
            assert ctx.max_cycles == 3
            ctx.next_iteration()

    with pytest.raises(CycleLimitExceededError) as info:
        wf.execute()
    assert runs == [1, 2, 3]
    assert info.value.task_id == "forever" and info.value.max_cycles == 3
    assert "max_cycles=3" in str(info.value)


def test_default_max_cycles_applies() -> None:
    runs: list[int] = []
    with workflow("w") as wf:

        @task(inject_context=True)
        def forever(ctx: TaskExecutionContext) -> None:
            runs.append(ctx.cycle_count)
            ctx.next_iteration()

    with pytest.raises(CycleLimitExceededError):
        wf.execute()
    assert len(runs) == DEFAULT_MAX_CYCLES


def test_can_iterate_lets_a_loop_stop_at_its_limit() -> None:
    with workflow("w") as wf:

        @task(inject_context=True, max_cycles=4)
        def bounded(ctx: TaskExecutionContext) -> int:
            if ctx.can_iterate():
                ctx.next_iteration()
            return ctx.cycle_count

    assert wf.execute() == 4


def test_max_steps_bounds_a_loop() -> None:
    with workflow("w") as wf:

        @task(inject_context=True, max_cycles=100)
        def spin(ctx: TaskExecutionContext) -> None:
            ctx.next_iteration()

    with pytest.raises(MaxStepsExceededError, match="max_steps=5"):
        wf.execute(max_steps=5)


# --- next_task ---------------------------------------------------------------------------


def _dynamic_workflow(goto: bool):
    wf = workflow("dyn")
    with wf:

        @task(inject_context=True)
        def decide(ctx: TaskExecutionContext) -> str:
            @task
            def extra() -> str:
                return "extra ran"

            assert ctx.next_task(extra, goto=goto) == "extra"
            return "decided"

        @task
        def successor() -> str:
            return "successor ran"

        decide >> successor
    return wf


def test_next_task_new_task_runs_and_successors_still_run() -> None:
    result, ctx = _dynamic_workflow(goto=False).execute(ret_context=True)
    assert sorted(ctx.completed_tasks) == ["decide", "extra", "successor"]
    assert ctx.completed_tasks[0] == "decide"
    assert ctx.get_result("extra") == "extra ran"
    assert ctx.graph.has_node("extra")
    assert result in ("extra ran", "successor ran")


def test_next_task_goto_skips_successors() -> None:
    result, ctx = _dynamic_workflow(goto=True).execute(ret_context=True)
    assert ctx.completed_tasks == ["decide", "extra"]
    assert result == "extra ran"
    assert ctx.status is RunStatus.COMPLETED


def test_next_task_to_an_existing_task_jumps_there() -> None:
    with workflow("w") as wf:

        @task(inject_context=True)
        def router(ctx: TaskExecutionContext) -> None:
            ctx.next_task(ctx.graph.get_node("handler"))

        @task
        def normal() -> str:
            return "normal"

        @task
        def handler() -> str:
            return "handled"

        router >> normal

    result, ctx = wf.execute(start_node="router", ret_context=True)
    assert result == "handled"
    assert ctx.completed_tasks == ["router", "handler"]


def test_dynamic_task_created_while_running_is_not_added_to_the_workflow() -> None:
    with workflow("w") as wf:

        @task(inject_context=True)
        def spawner(ctx: TaskExecutionContext) -> None:
            ctx.next_task(TaskWrapper("spawned", lambda: "spawned ran"))

    _, ctx = wf.execute(ret_context=True)
    assert ctx.get_result("spawned") == "spawned ran"
    assert list(ctx.graph.nodes) == ["spawner", "spawned"]  # the run's graph grew...
    assert list(wf.graph.nodes) == ["spawner"]  # ...not the workflow's: runs again alike
    with workflow("other") as other:
        pass
    assert list(other.graph.nodes) == []  # ...no workflow context leaked


# --- terminate and cancel --------------------------------------------------------------


def test_terminate_returns_normally_and_skips_successors() -> None:
    with workflow("w") as wf:

        @task(inject_context=True)
        def stopper(ctx: TaskExecutionContext) -> str:
            ctx.terminate_workflow("nothing left to do")
            return "stopped"

        @task
        def skipped() -> None:
            raise AssertionError("must not run")

        stopper >> skipped

    result, ctx = wf.execute(ret_context=True)
    assert result == "stopped"
    assert ctx.completed_tasks == ["stopper"]
    assert ctx.status is RunStatus.TERMINATED


def test_cancel_raises_and_does_not_complete_the_task() -> None:
    with workflow("w") as wf:

        @task(inject_context=True)
        def canceller(ctx: TaskExecutionContext) -> None:
            ctx.cancel_workflow("input is garbage")

        @task
        def skipped() -> None:
            raise AssertionError("must not run")

        canceller >> skipped

    ctx = wf.create_context()
    with pytest.raises(WorkflowCancelledError) as info:
        WorkflowEngine().execute(ctx)
    assert info.value.task_id == "canceller" and info.value.reason == "input is garbage"
    assert "'canceller'" in str(info.value) and "input is garbage" in str(info.value)
    assert isinstance(info.value, GraflowWorkflowCanceledError)
    assert ctx.completed_tasks == [] and ctx.steps == 0
    assert ctx.status is RunStatus.CANCELLED


def test_cancel_after_a_recovered_failure_has_no_stale_cause() -> None:
    with workflow("w") as wf:

        @task(inject_context=True, max_retries=1)
        def flaky(ctx: TaskExecutionContext) -> None:
            if ctx.attempt == 1:
                raise RuntimeError("transient")

        @task(inject_context=True)
        def canceller(ctx: TaskExecutionContext) -> None:
            ctx.cancel_workflow("stop")

        flaky >> canceller

    with pytest.raises(WorkflowCancelledError) as info:
        wf.execute()
    assert info.value.__cause__ is None


def test_later_failure_is_chained_to_its_own_exception() -> None:
    with workflow("w") as wf:

        @task(inject_context=True, max_retries=1)
        def flaky(ctx: TaskExecutionContext) -> None:
            if ctx.attempt == 1:
                raise RuntimeError("transient")

        @task
        def broken() -> None:
            raise KeyError("the real problem")

        flaky >> broken

    with pytest.raises(TaskExecutionError) as info:
        wf.execute()
    assert info.value.task_id == "broken"
    assert isinstance(info.value.__cause__, KeyError)


# --- >> cycles ---------------------------------------------------------------------------


def test_rshift_cycle_without_an_entry_is_a_deadlock() -> None:
    with workflow("w") as wf:

        @task
        def x() -> None: ...

        @task
        def y() -> None: ...

        x >> y >> x

    with pytest.raises(DeadlockError) as info:
        wf.execute()
    assert info.value.blocked == ["x", "y"]


def test_rshift_cycle_behind_a_root_is_a_deadlock() -> None:
    with workflow("w") as wf:

        @task
        def a() -> None: ...

        @task
        def b() -> None: ...

        @task
        def c() -> None: ...

        a >> b >> c >> b

    ctx = wf.create_context()
    with pytest.raises(DeadlockError, match="'b'"):
        WorkflowEngine().execute(ctx)
    assert ctx.completed_tasks == ["a"]
