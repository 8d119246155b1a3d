"""next_task with a parallel group (and its join) built inside a running task."""

from graflow.core.context import TaskExecutionContext
from graflow.core.decorators import task
from graflow.core.task import parallel
from graflow.core.workflow import workflow

with workflow("fan_out") as wf:

    @task
    def square(x):
        return x * x

    @task(inject_context=True)
    def collect(context: TaskExecutionContext):
        values = [context.get_result(f"sq{i}") for i in (1, 2, 3)]
        print("collect sees", values)
        return sum(values)

    @task(inject_context=True)
    def plan(context: TaskExecutionContext):
        group = parallel(square(task_id="sq1", x=1), square(task_id="sq2", x=2),
                         square(task_id="sq3", x=3))
        context.next_task(group >> collect, goto=True)
        print("planned", [t.task_id for t in group.tasks])
        return "planned"

    result, ctx = wf.execute("plan", ret_context=True)
    print("result:", result)
    print("plan result:", ctx.get_result("plan"))
    print("squares:", [ctx.get_result(f"sq{i}") for i in (1, 2, 3)])
