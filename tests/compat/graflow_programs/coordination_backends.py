"""Parallel groups with explicit coordination backends and policies."""

from graflow.coordination.coordinator import CoordinationBackend
from graflow.core.context import TaskExecutionContext
from graflow.core.decorators import task
from graflow.core.handlers.group_policy import AtLeastNGroupPolicy
from graflow.core.workflow import workflow

with workflow("threads") as wf:

    @task
    def start():
        return 10

    @task(inject_context=True)
    def a(context: TaskExecutionContext):
        return context.get_result("start") + 1

    @task(inject_context=True)
    def b(context: TaskExecutionContext):
        return context.get_result("start") + 2

    @task
    def broken():
        raise ValueError("region down")

    @task(inject_context=True)
    def join(context: TaskExecutionContext):
        values = [context.get_result("a"), context.get_result("b")]
        print("join sees", values)
        return sum(values)

    group = (a | b | broken).with_execution(
        backend=CoordinationBackend.THREADING, backend_config={"thread_count": 3},
        policy=AtLeastNGroupPolicy(min_success=2))
    start >> group >> join
    print("threading, at least 2:", wf.execute("start"))

with workflow("direct") as wf2:

    @task
    def first():
        print("first")
        return 1

    @task
    def second():
        print("second")
        return 2

    @task(inject_context=True)
    def combine(context: TaskExecutionContext):
        return context.get_result("first") + context.get_result("second")

    (first | second).with_execution(backend=CoordinationBackend.DIRECT, policy="strict") >> combine
    print("direct, strict:", wf2.execute())
