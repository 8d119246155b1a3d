"""Graflow code, written against upstream's API, runs after renaming the imports.

The workflow below follows upstream's checkpoint examples line by line (with
``graflow`` renamed to ``graflow_dist``): explicit ExecutionContext.create + engine,
a deferred checkpoint to an explicit base path, resume through CheckpointManager.
"""

from __future__ import annotations

import tempfile

from graflow_dist.core.checkpoint import CheckpointManager
from graflow_dist.core.context import ExecutionContext, TaskExecutionContext
from graflow_dist.core.decorators import task
from graflow_dist.core.engine import WorkflowEngine
from graflow_dist.core.workflow import workflow


def test_upstream_style_basic_checkpoint_example_runs_unchanged() -> None:
    ran: list[str] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        checkpoint_path = None
        with workflow("basic_checkpoint") as ctx:

            @task(inject_context=True)
            def step_1(task_ctx: TaskExecutionContext):
                channel = task_ctx.get_channel()
                channel.set("data", [1, 2, 3])
                ran.append("step_1")
                return "step_1_done"

            @task(inject_context=True)
            def step_2(task_ctx: TaskExecutionContext):
                channel = task_ctx.get_channel()
                data = channel.get("data")
                channel.set("processed", [x * 2 for x in data])
                task_ctx.checkpoint(path=f"{tmpdir}/checkpoint_step2",
                                    metadata={"stage": "processed"})
                ran.append("step_2")
                return "step_2_done"

            @task(inject_context=True)
            def step_3(task_ctx: TaskExecutionContext):
                processed = task_ctx.get_channel().get("processed")
                ran.append("step_3")
                return sum(processed)

            step_1 >> step_2 >> step_3

            exec_context = ExecutionContext.create(ctx.graph, "step_1", max_steps=10)
            engine = WorkflowEngine()
            assert engine.execute(exec_context) == 12
            checkpoint_path = exec_context.last_checkpoint_path

        assert checkpoint_path == f"{tmpdir}/checkpoint_step2.pkl"
        ran.clear()
        restored_context, metadata = CheckpointManager.resume_from_checkpoint(checkpoint_path)
        assert metadata.user_metadata["stage"] == "processed"
        assert metadata.session_id == exec_context.session_id
        assert restored_context.completed_tasks == ["step_1", "step_2"]
        engine = WorkflowEngine()
        assert engine.execute(restored_context) == 12
        assert restored_context.completed_tasks == ["step_1", "step_2", "step_3"]


def test_upstream_style_iteration_with_data_and_ret_context() -> None:
    with workflow("optimizer") as wf:

        @task(id="optimizer", inject_context=True, max_cycles=20)
        def optimize(context, data=None):
            params = data or {"lr": 1.0, "loss": 100.0}
            params = {"lr": params["lr"] * 0.5, "loss": params["loss"] / 2}
            if params["loss"] > 1.0 and context.cycle_count < context.max_cycles:
                context.next_iteration(params)
            return params

        result, ctx = wf.execute("optimizer", ret_context=True)
    assert result["loss"] <= 1.0
    assert ctx.cycle_counts["optimizer"] == 7
    assert ctx.get_result("optimizer") == result
