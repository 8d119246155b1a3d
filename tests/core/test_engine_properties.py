"""Property test of the whole in-process path: random DAGs wired with ``>>`` and
``|`` run every task exactly once, each after all of its predecessors."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from graflow_dist import TaskExecutionContext, TaskWrapper, workflow
from graflow_dist.core.task import Executable


def recorder(name: str) -> TaskWrapper:
    def body(ctx: TaskExecutionContext) -> str:
        ctx.get_channel().append("order", name)
        return name

    return TaskWrapper(name, body, inject_context=True)


@st.composite
def layouts(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]], list[int]]:
    size = draw(st.integers(1, 8))
    pairs = [(i, j) for i in range(size) for j in range(i + 1, size)]
    edges = draw(st.lists(st.sampled_from(pairs), unique=True)) if pairs else []
    groups = draw(st.lists(st.integers(0, size - 1), unique=True, max_size=2))
    return size, edges, groups


@settings(max_examples=60, deadline=None)
@given(layout=layouts())
def test_random_workflow_runs_each_task_once_in_dependency_order(layout) -> None:
    size, edges, group_nodes = layout
    preds: dict[str, set[str]] = {}  # task -> tasks that must have run before it
    with workflow("random") as wf:
        nodes: list[Executable] = []
        for i in range(size):
            if i in group_nodes:  # node i is a parallel group of two tasks
                nodes.append(recorder(f"n{i}a") | recorder(f"n{i}b"))
            else:
                nodes.append(recorder(f"n{i}"))

        def tasks_of(node: Executable) -> list[str]:
            return getattr(node, "member_ids", None) or [node.task_id]

        for i, j in edges:
            nodes[i] >> nodes[j]
            for later in tasks_of(nodes[j]):
                preds.setdefault(later, set()).update(tasks_of(nodes[i]))

    _, ctx = wf.execute(ret_context=True)
    order = ctx.channel.get("order")
    expected = sorted(t for node in nodes for t in tasks_of(node))
    assert sorted(order) == expected  # each exactly once
    position = {name: k for k, name in enumerate(order)}
    for later, before in preds.items():
        assert all(position[b] < position[later] for b in before)
