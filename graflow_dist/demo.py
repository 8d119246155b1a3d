"""The demo workflow of ``graflow-dist up --demo``: fan-out, join, a loop with a
checkpoint, and a report.

Its tasks live in this installed module, so workers import them by reference.
"""

from __future__ import annotations

import time

from graflow_dist.core.context import TaskExecutionContext
from graflow_dist.core.decorators import task
from graflow_dist.core.task import ParallelGroup
from graflow_dist.core.workflow import WorkflowContext, workflow

SHARDS = 16
REFINE_ROUNDS = 3
TASK_SECONDS = 0.05


def build_demo_workflow(shards: int = SHARDS, task_seconds: float = TASK_SECONDS
                        ) -> WorkflowContext:
    with workflow("graflow-dist-demo") as wf:

        @task
        def prepare() -> list[int]:
            return list(range(shards))

        def shard_task(i: int):  # noqa: ANN202 - returns a task
            @task(f"square_{i:02d}")
            def square(prepare: list[int]) -> int:
                time.sleep(task_seconds)
                return prepare[i] ** 2

            return square

        @task(inject_context=True)
        def total(ctx: TaskExecutionContext) -> int:
            return sum(ctx.get_result(f"square_{i:02d}") for i in range(shards))

        @task(inject_context=True, max_cycles=REFINE_ROUNDS + 1)
        def refine(ctx: TaskExecutionContext, estimate: float | None = None) -> float:
            value = estimate if estimate is not None else float(ctx.get_result("total"))
            value = value / 2 + 1
            if ctx.cycle_count < REFINE_ROUNDS:
                ctx.checkpoint(metadata={"round": ctx.cycle_count})
                ctx.next_iteration(value)
            return value

        @task
        def report(total: int, refine: float) -> str:
            return f"sum of squares = {total}, refined estimate = {refine:.2f}"

        group = ParallelGroup([shard_task(i) for i in range(shards)])
        prepare >> group >> total >> refine >> report
    return wf


wf = build_demo_workflow()
