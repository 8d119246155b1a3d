"""A Graflow 0.2.0 program using tracing, graph drawing, typed channels and the cycle
controller, with only ``graflow`` renamed to ``graflow_dist`` in its imports. Its output
under Graflow 0.2.0 is recorded in ``tracing_drawing_typed.graflow.txt``."""

import json
import re
from typing import TypedDict

from graflow_dist.channels.schemas import TaskProgressMessage
from graflow_dist.core.context import ExecutionContext, TaskExecutionContext
from graflow_dist.core.decorators import task
from graflow_dist.core.engine import WorkflowEngine
from graflow_dist.core.workflow import workflow
from graflow_dist.trace import ConsoleTracer, NoopTracer
from graflow_dist.utils.graph import draw_mermaid, show_graph_info, visualize_dependencies


class Metrics(TypedDict):
    loss: float
    epoch: int


out = {}
tracer = NoopTracer()
with workflow("training", tracer=tracer) as wf:

    @task(inject_context=True)
    def prepare(ctx: TaskExecutionContext):
        progress = {"task_id": "prepare", "progress": 0.1, "message": "ok", "timestamp": 0.0}
        ctx.get_typed_channel(TaskProgressMessage).send("progress", progress)
        return "data"

    @task(inject_context=True)
    def evaluate(ctx: TaskExecutionContext):
        progress = ctx.get_typed_channel(TaskProgressMessage).receive("progress")
        ctx.get_typed_channel(Metrics).send("metrics", {"loss": 1.0, "epoch": 0})
        return progress["progress"]

    @task(inject_context=True, max_cycles=5)
    def train(ctx: TaskExecutionContext):
        channel = ctx.get_typed_channel(Metrics)
        cc = ctx.execution_context.cycle_controller
        epoch = cc.get_cycle_count("train")
        previous = channel.receive("metrics")
        channel.send("metrics", {"loss": previous["loss"] / 2, "epoch": epoch})
        if cc.accept_next_cycle("train") and epoch < 3:
            ctx.next_iteration()
        return {"epoch": epoch, "loss": channel.receive("metrics")["loss"]}

    prepare >> evaluate >> train
    wf.show_info()
    visualize_dependencies(wf.graph.nx_graph())
    show_graph_info(wf.graph.nx_graph())
    out["mermaid_has_edges"] = "prepare" in draw_mermaid(wf.graph.nx_graph())
    result, ctx = wf.execute("prepare", ret_context=True)

out["result"] = result
out["order"] = [re.sub(r"_cycle_\d+_[0-9a-f]+$", "", n) for n in tracer.get_execution_order()
                if not n.startswith("workflow_") and n != "training"]
runtime = tracer.get_runtime_graph()
out["statuses"] = sorted({runtime.nodes[n]["status"] for n in tracer.get_execution_order()
                          if n in runtime.nodes and not n.startswith("workflow_")})
counts = ctx.cycle_controller.cycle_counts
out["cycle_counts"] = {k: v for k, v in counts.items() if k in ("prepare", "evaluate")}
out["evaluate_result"] = ctx.get_result("evaluate")
out["train_cycles"] = ctx.cycle_controller.get_cycle_count("train")
out["max_train"] = ctx.cycle_controller.get_max_cycles_for_node("train")
bad = False
try:
    with workflow("bad") as wf2:
        @task(inject_context=True)
        def broken(ctx: TaskExecutionContext):
            ctx.get_typed_channel(Metrics).send("metrics", {"loss": "high"})
        wf2.execute("broken")
except Exception as exc:
    bad = isinstance(exc, TypeError) or isinstance(exc.__cause__, TypeError)
    out["bad_error"] = type(exc).__name__
out["bad_raised"] = bad

console = ConsoleTracer(enable_colors=False)
with workflow("console", tracer=console) as wf3:
    @task
    def hello():
        return "hi"
    @task
    def world():
        return "world"
    hello >> world
    exec_ctx = ExecutionContext.create(wf3.graph, "hello", tracer=console)
    out["console_result"] = WorkflowEngine().execute(exec_ctx)
print("JSON:" + json.dumps(out, sort_keys=True))
