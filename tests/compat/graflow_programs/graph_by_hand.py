"""A workflow graph built node by node and edge by edge."""

from graflow.core.context import ExecutionContext
from graflow.core.decorators import task
from graflow.core.engine import WorkflowEngine
from graflow.core.graph import TaskGraph
from graflow.core.task import Task


@task
def load():
    return [3, 1, 2]


@task
def ordered(load):
    return sorted(load)


@task
def report(ordered):
    return f"ordered: {ordered}"


graph = TaskGraph()
graph.add_node(Task("start", register_to_context=False), "start")
graph.add_node(load, "load")
graph.add_node(ordered, "ordered")
graph.add_node(report, "report")
graph.add_edge("start", "load")
graph.add_edge("load", "ordered")
graph.add_edge("ordered", "report")
graph.add_node(load, "load", skip_if_exists=True)

print("nodes:", list(graph.nodes))
print("edges:", graph.get_edges())
print("start nodes:", graph.get_start_nodes())
print("successors of load:", graph.successors("load"))
print("predecessors of report:", graph.predecessors("report"))
print("has report:", graph.has_node("report"), "has other:", graph.has_node("other"))

context = ExecutionContext.create(graph, "start", max_steps=10)
print("result:", WorkflowEngine().execute(context))
print("completed:", context.completed_tasks)
