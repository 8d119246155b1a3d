"""@task(handler=...): handler objects and registered names, in process."""

from __future__ import annotations

import pickle
from typing import Any

import cloudpickle
import pytest

from graflow_dist import ExecutionContext, TaskExecutionContext, WorkflowEngine, task, workflow
from graflow_dist.core.handler import TaskHandler, register_handler
from graflow_dist.core.handlers.direct import DirectTaskHandler
from graflow_dist.core.handlers.docker import DockerTaskHandler
from graflow_dist.errors import TaskExecutionError, TaskHandlerError


class Audit(TaskHandler):
    """Records around the call and decorates the result."""

    def __init__(self, label: str) -> None:
        self.label = label

    def get_name(self) -> str:
        return f"audit-{self.label}"

    def execute_task(self, task: Any, context: ExecutionContext) -> Any:
        context.channel.append("audit", f"{self.label}:before:{task.task_id}")
        result = task.run()
        context.channel.append("audit", f"{self.label}:after:{task.task_id}")
        return f"{self.label}({result})"


class Twice(TaskHandler):
    def execute_task(self, task: Any, context: ExecutionContext) -> Any:
        return [task.run(), task.run()]


def test_a_handler_object_wraps_the_call_with_resolved_arguments() -> None:
    with workflow("handlers") as wf:

        @task
        def source() -> int:
            return 20

        @task(handler=Audit("x"), inject_context=True)
        def add(ctx: TaskExecutionContext, source: int) -> int:
            ctx.get_channel().append("audit", f"inside:{ctx.task_id}")
            return source + 1

        source >> add

    result, ctx = wf.execute(ret_context=True)
    assert result == "x(21)"
    assert ctx.get_result("add") == "x(21)"
    assert ctx.channel.get("audit") == ["x:before:add", "inside:add", "x:after:add"]
    assert add.handler_type == "audit-x"


def test_a_registered_name_and_an_engine_registration() -> None:
    register_handler("twice-test", Twice())
    with workflow("named") as wf:

        @task(handler="twice-test")
        def roll() -> int:
            return 3

        @task(handler="engine-only")
        def wrapped(roll: list[int]) -> int:
            return sum(roll)

        roll >> wrapped

    engine = WorkflowEngine()
    engine.register_handler("engine-only", Audit("e"))
    ctx = ExecutionContext.create(wf.graph)
    assert engine.execute(ctx) == "e(6)"
    assert ctx.get_result("roll") == [3, 3]
    assert roll.handler_type == "twice-test" and roll.handler is None


def test_an_unknown_handler_name_fails_the_run_without_retries() -> None:
    with workflow("unknown") as wf:

        @task(handler="gpu", max_retries=3)
        def train() -> str:
            return "never"

    with pytest.raises(TaskHandlerError) as raised:
        wf.execute()
    message = str(raised.value)
    assert "task 'train': handler 'gpu' is not registered in this process" in message
    assert "register_handler('gpu', handler)" in message


def test_a_named_handler_travels_with_the_pickled_task() -> None:
    register_handler("audit-travel", Audit("t"))

    @task(handler="audit-travel")
    def job() -> int:
        return 1

    shipped = cloudpickle.loads(cloudpickle.dumps(job))
    assert isinstance(shipped.handler, Audit) and shipped.handler.label == "t"
    assert job.handler is None  # the original still resolves by name


def test_handler_errors_and_bad_handlers() -> None:
    class Raising(TaskHandler):
        def execute_task(self, task: Any, context: ExecutionContext) -> Any:
            raise RuntimeError("sandbox refused")

    with workflow("raising") as wf:

        @task(handler=Raising())
        def boom() -> None:
            return None

    with pytest.raises(TaskExecutionError, match="task 'boom' failed: RuntimeError: sandbox"):
        wf.execute()
    with pytest.raises(TaskHandlerError, match="handler must be a TaskHandler instance or"):
        task(handler=42)(lambda: None)  # type: ignore[arg-type]
    with pytest.raises(TaskHandlerError, match="expected a TaskHandler instance, got str"):
        register_handler("x", "not a handler")  # type: ignore[arg-type]
    with pytest.raises(TaskHandlerError, match="DockerTaskHandler is not available"):
        DockerTaskHandler(image="python:3.11")


def test_direct_handler_and_bound_tasks_keep_their_handler() -> None:
    assert DirectTaskHandler().get_name() == "direct"
    with workflow("bound") as wf:

        @task(handler=Audit("b"))
        def scale(x: int) -> int:
            return x * 2

        @task(inject_context=True)
        def fan(ctx: TaskExecutionContext) -> None:
            ctx.next_task(scale(task_id="scaled", x=5))

    _, ctx = wf.execute("fan", ret_context=True)
    assert ctx.get_result("scaled") == "b(10)"
    assert pickle.loads(cloudpickle.dumps(scale(x=1))).handler.label == "b"
