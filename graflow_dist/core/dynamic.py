"""Tasks, parallel groups and chains built while a task runs, for ``next_task``.

While a task runs, a `DynamicScope` is the current workflow context: whatever the task
builds (``a(x=1)``, ``parallel(...)``, ``group >> join``) lands in the scope's scratch
graph, never in the workflow that defined the task. ``next_task(x)`` then takes the new
nodes reachable from ``x`` (group members, chained successors, the join) together with
their edges; once the task completed they join the run's graph and the scheduler's shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graflow_dist.core.graph import LayeredGraph, TaskGraph
from graflow_dist.core.scope import GraphScope
from graflow_dist.core.task import ParallelGroup, SequentialTask
from graflow_dist.errors import GraphError
from graflow_dist.scheduler.specs import NodeShape
from graflow_dist.wire.signing import loads_signed


@dataclass
class DynamicNode:
    """A node added at run time and its outgoing edges: what is stored (signed) for
    workers and checkpoints, so a dynamic chain or join keeps its edges."""

    executable: Any
    successors: list[str] = field(default_factory=list)


class DynamicScope(GraphScope):
    """The workflow context of one task execution. Groups it creates are named after
    the task and its iteration, so names are unique within the run and the same when
    that execution runs again."""

    def __init__(self, task_id: str, cycle: int) -> None:
        super().__init__(f"dynamic:{task_id}")
        self._prefix = task_id if cycle == 0 else f"{task_id}_{cycle + 1}"

    def next_group_name(self) -> str:
        self._group_counter += 1
        return f"{self._prefix}_ParallelGroup_{self._group_counter}"


def entry_points(executable: Any) -> list[Any]:
    """The executables ``next_task(executable)`` names: a chain's parts, else itself."""
    return list(executable.tasks) if isinstance(executable, SequentialTask) else [executable]


def collect_new_nodes(
    executable: Any, scratch: TaskGraph, graph: TaskGraph, known: dict[str, DynamicNode]
) -> dict[str, DynamicNode]:
    """The nodes reachable from ``executable`` (through ``scratch``'s edges and group
    membership) that neither ``graph`` nor ``known`` has, in discovery order."""

    def is_new(node_id: str) -> bool:
        return not graph.has_node(node_id) and node_id not in known

    first, *rest = entry_points(executable)
    if not is_new(first.task_id):
        added = [t.task_id for t in rest if is_new(t.task_id)]
        if added:
            raise GraphError(
                f"next_task: the chain starts at {first.task_id!r}, which is already in the "
                f"workflow, so it is a jump and the new tasks chained after it ({added}) "
                "would never run; start the chain with a new task"
            )
        return {}
    found: dict[str, DynamicNode] = {}
    stack = list(reversed(entry_points(executable)))
    while stack:
        node = stack.pop()
        node_id = node.task_id
        if node_id in found or not is_new(node_id):
            continue
        successors = scratch.successors(node_id) if scratch.has_node(node_id) else []
        found[node_id] = DynamicNode(node, successors)
        following = [scratch.get_node(s) for s in successors]
        if isinstance(node, ParallelGroup):
            following = [*node.tasks, *following]
        stack.extend(reversed(following))
    return found


def dynamic_shapes(nodes: dict[str, DynamicNode], graph: TaskGraph,
                   default_max_cycles: int) -> dict[str, NodeShape]:
    """The scheduler shapes of ``nodes`` as they will sit in ``graph``."""
    view = LayeredGraph(graph)
    adopt(view, nodes)
    return {node_id: view.get_node(node_id).node_shape(view, default_max_cycles)
            for node_id in nodes}


def adopt(graph: TaskGraph, nodes: dict[str, DynamicNode]) -> None:
    """Add ``nodes`` and their edges to ``graph``."""
    for node_id, node in nodes.items():
        if not graph.has_node(node_id):
            graph.add_node(node.executable)
    for node_id, node in nodes.items():
        for successor in node.successors:
            if not graph.has_node(successor):
                raise GraphError(
                    f"dynamic task {node_id!r} is chained to {successor!r}, which is neither "
                    "in the workflow nor created with it"
                )
            graph.add_edge(node_id, successor)


def load_dynamic(blobs: dict[str, bytes], what: str) -> dict[str, DynamicNode]:
    """Stored dynamic tasks (signed blobs, verified before loading) as nodes to
    `adopt`; ``what`` says whose they are in errors."""
    nodes = {}
    for task_id, blob in blobs.items():
        loaded = loads_signed(blob, f"{what}: dynamic task {task_id!r}")
        nodes[task_id] = loaded if isinstance(loaded, DynamicNode) else DynamicNode(loaded)
    return nodes


def unwrap(loaded: Any) -> Any:
    """The executable of a stored dynamic node (older stores hold the bare executable)."""
    return loaded.executable if isinstance(loaded, DynamicNode) else loaded


__all__ = [
    "DynamicNode",
    "DynamicScope",
    "adopt",
    "collect_new_nodes",
    "load_dynamic",
    "dynamic_shapes",
    "entry_points",
    "unwrap",
]
