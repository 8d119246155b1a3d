"""A custom TaskHandler registered with the engine and chosen with @task(handler=...)."""

from graflow.core.context import ExecutionContext
from graflow.core.decorators import task
from graflow.core.engine import WorkflowEngine
from graflow.core.handler import TaskHandler
from graflow.core.handlers.direct import DirectTaskHandler
from graflow.core.workflow import workflow


class TimingHandler(TaskHandler):
    def get_name(self):
        return "timing"

    def execute_task(self, task, context):
        print(f"[timing] start {task.task_id}")
        result = task.run()
        context.set_result(task.task_id, result)
        print(f"[timing] end {task.task_id} -> {result}")
        return result


with workflow("handlers") as wf:

    @task
    def fetch():
        return [1, 2, 3]

    @task(handler="timing")
    def total(fetch):
        print("total runs inside the handler")
        return sum(fetch)

    @task(handler="direct")
    def report(total):
        return f"total={total}"

    fetch >> total >> report

    engine = WorkflowEngine()
    engine.register_handler("timing", TimingHandler())
    context = ExecutionContext.create(wf.graph, "fetch")
    print("result:", engine.execute(context))
    print("total stored:", context.get_result("total"))
    print("names:", TimingHandler().get_name(), DirectTaskHandler().get_name())
