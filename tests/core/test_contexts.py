"""What a task sees (TaskExecutionContext) and the run's ExecutionContext."""

from __future__ import annotations

from typing import Any

from graflow_dist import ExecutionContext, TaskExecutionContext, task, workflow
from graflow_dist.core.workflow import get_current_workflow_context
from graflow_dist.scheduler import RunStatus


def test_task_context_exposes_the_run() -> None:
    seen: dict[str, Any] = {}
    with workflow("w") as wf:

        @task(inject_context=True, max_cycles=4, max_retries=2)
        def probe(ctx: TaskExecutionContext) -> None:
            seen.update(
                task_id=ctx.task_id,
                session_id=ctx.session_id,
                trace_id=ctx.trace_id,
                cycle_count=ctx.cycle_count,
                max_cycles=ctx.max_cycles,
                retry_count=ctx.retry_count,
                max_retries=ctx.max_retries,
                attempt=ctx.attempt,
                channel=ctx.get_channel(),
                graph=ctx.graph,
                elapsed=ctx.elapsed_time(),
            )
            ctx.set_local_data("k", "v")
            seen["local"] = ctx.get_local_data("k")
            seen["local_default"] = ctx.get_local_data("nope", "dflt")

    _, run = wf.execute(ret_context=True)
    assert seen["task_id"] == "probe"
    assert seen["session_id"] == seen["trace_id"] == run.session_id
    assert (seen["cycle_count"], seen["max_cycles"]) == (1, 4)
    assert (seen["retry_count"], seen["max_retries"], seen["attempt"]) == (0, 2, 1)
    assert seen["channel"] is run.channel
    assert seen["graph"] is wf.graph
    assert 0 <= seen["elapsed"] < 5
    assert (seen["local"], seen["local_default"]) == ("v", "dflt")


def test_each_execute_is_a_fresh_run() -> None:
    with workflow("w") as wf:

        @task(inject_context=True)
        def count(ctx: TaskExecutionContext) -> int:
            return ctx.get_channel().atomic_add("runs")

    first, ctx1 = wf.execute(ret_context=True)
    second, ctx2 = wf.execute(ret_context=True)
    assert first == second == 1
    assert ctx1.session_id != ctx2.session_id


def test_create_context_defaults() -> None:
    with workflow("w") as wf:

        @task
        def only() -> None: ...

    ctx = ExecutionContext.create(wf.graph, "only", max_steps=7)
    assert (ctx.start_node, ctx.max_steps, ctx.steps) == ("only", 7, 0)
    assert ctx.completed_tasks == [] and ctx.pending_tasks == []
    assert ctx.status is RunStatus.RUNNING
    assert ctx.channel.name == ctx.session_id
    assert ctx.last_checkpoint_path is None and not ctx.checkpoint_requested


def test_nested_workflows_collect_their_own_tasks() -> None:
    with workflow("outer") as outer:

        @task
        def a() -> None: ...

        with workflow("inner") as inner:

            @task
            def b() -> None: ...

            assert get_current_workflow_context() is inner

        @task
        def c() -> None: ...

        assert get_current_workflow_context() is outer
    assert get_current_workflow_context() is None
    assert list(outer.graph.nodes) == ["a", "c"]
    assert list(inner.graph.nodes) == ["b"]


def test_keyword_resolution_can_be_switched_off() -> None:
    with workflow("w") as wf:

        @task
        def value() -> int:
            return 1

        @task(resolve_keyword_args=False)
        def literal(value: str = "untouched") -> str:
            return value

        value >> literal

    assert wf.execute() == "untouched"
