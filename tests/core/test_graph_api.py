"""The low-level graph API: a workflow built with add_node / add_edge by hand."""

from __future__ import annotations

import pytest

from graflow_dist import ExecutionContext, TaskExecutionContext, WorkflowEngine, parallel
from graflow_dist.core.decorators import task
from graflow_dist.core.graph import TaskGraph
from graflow_dist.core.task import Task
from graflow_dist.core.workflow import workflow
from graflow_dist.errors import DuplicateTaskError, GraphError, UnknownTaskError


@task
def load() -> list[int]:
    return [3, 1, 2]


@task
def ordered(load: list[int]) -> list[int]:
    return sorted(load)


@task
def total(load: list[int]) -> int:
    return sum(load)


@task(inject_context=True)
def report(ctx: TaskExecutionContext, ordered: list[int], total: int) -> str:
    ctx.get_channel().append("reports", ctx.task_id)
    return f"{ordered} / {total}"


def hand_built_graph() -> TaskGraph:
    """``start -> load -> {ordered, total} -> report``, every node and edge by hand."""
    graph = TaskGraph()
    graph.add_node(Task("start", register_to_context=False), "start")
    graph.add_node(load, "load")
    graph.add_node(ordered)
    graph.add_node(total, "total", skip_if_exists=False)
    graph.add_node(report, "report")
    for source, target in [("start", "load"), ("load", "ordered"), ("load", "total"),
                           ("ordered", "report"), ("total", "report")]:
        graph.add_edge(source, target)
    return graph


def test_a_graph_built_by_hand_runs_and_joins_once() -> None:
    graph = hand_built_graph()
    assert graph.get_start_nodes() == ["start"]
    assert graph.get_edges() == graph.edges
    assert ("load", "total") in graph.edges
    ctx = ExecutionContext.create(graph, "start", max_steps=20)
    assert WorkflowEngine().execute(ctx) == "[1, 2, 3] / 6"
    assert ctx.channel.get("reports") == ["report"]  # once, after both predecessors
    assert ctx.completed_tasks == ["start", "load", "ordered", "total", "report"]
    assert ctx.get_result("start") is None


def test_add_node_under_another_id_copies_the_task() -> None:
    @task
    def size(fetch: list[int]) -> int:  # reads the result stored under the node id
        return len(fetch)

    graph = TaskGraph()
    graph.add_node(load, "fetch")
    graph.add_node(size)
    graph.add_edge("fetch", "size")
    copy = graph.get_node("fetch")
    assert copy is not load and copy.task_id == "fetch" and copy.func is load.func
    assert load.task_id == "load"
    ctx = ExecutionContext.create(graph, "fetch")
    assert WorkflowEngine().execute(ctx) == 3
    assert ctx.get_result("fetch") == [3, 1, 2]


def test_duplicates_unknown_edges_and_groups_under_another_id() -> None:
    graph = TaskGraph()
    graph.add_node(load, "load")
    graph.add_node(load, "load")  # the same task again: nothing changes
    with pytest.raises(DuplicateTaskError, match="duplicate task id 'load'"):
        graph.add_node(ordered, "load")
    graph.add_node(ordered, "load", skip_if_exists=True)
    assert graph.get_node("load") is load
    with pytest.raises(UnknownTaskError, match="unknown task 'nowhere'"):
        graph.add_edge("load", "nowhere")
    with workflow("g"):
        group = parallel(ordered, total)
    with pytest.raises(GraphError, match="only a task can join a graph under another id"):
        graph.add_node(group, "renamed")
    graph.add_node(group)
    assert graph.get_parallel_group_members(group.task_id) == ["ordered", "total"]
    assert graph.get_parallel_group_members("load") == []
    graph.clear()
    assert (list(graph.nodes), graph.edges) == ([], [])


def test_workflow_context_low_level_calls() -> None:
    with workflow("by-hand") as wf:
        wf.add_node("begin", Task("begin", register_to_context=False))
        wf.add_node("load", load)
        wf.add_node("total", total)
        wf.add_edge("begin", "load")
        wf.add_edge("load", "total")
        wf.rename_node("total", "summed")
    assert list(wf.graph.nodes) == ["begin", "load", "summed"]
    assert wf.graph.successors("load") == ["summed"]
    assert wf.execute("begin") == 6


def test_task_is_a_no_op_node_that_joins_the_current_workflow() -> None:
    with workflow("marks") as wf:
        start = Task("start")
        end = Task("end")
        start >> load >> end
    assert list(wf.graph.nodes) == ["start", "end", "load"]
    result, ctx = wf.execute(ret_context=True)
    assert result is None and ctx.completed_tasks == ["start", "load", "end"]
    assert repr(start) == "Task(start)" and start.__name__ == "start"
