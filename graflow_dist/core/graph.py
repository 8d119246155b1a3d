"""TaskGraph: the nodes (executables) of a workflow and the ``>>`` edges between them."""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Iterator, Mapping
from typing import Any

from graflow_dist.drawing.model import DrawGraph
from graflow_dist.drawing.text import render_text
from graflow_dist.errors import (
    DuplicateTaskError,
    GraphError,
    UnknownTaskError,
)
from graflow_dist.optional import require
from graflow_dist.scheduler.specs import (
    DEFAULT_MAX_CYCLES,
    GraphShape,
    NodeShape,
)


class NodeView(Mapping[str, dict[str, Any]]):
    """``graph.nodes``: iterates over task ids; ``graph.nodes[id]["task"]`` is the
    executable (the shape networkx gives Graflow users)."""

    def __init__(self, nodes: dict[str, Any]) -> None:
        self._nodes = nodes

    def __getitem__(self, node_id: str) -> dict[str, Any]:
        return {"task": self._nodes[node_id]}

    def __iter__(self) -> Iterator[str]:
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def __repr__(self) -> str:
        return f"NodeView({list(self._nodes)})"


class TaskGraph:
    """A directed graph of executables keyed by task id, edges in insertion order."""

    def __init__(self) -> None:
        self._nodes: dict[str, Any] = {}
        self._succ: dict[str, list[str]] = {}
        self._pred: dict[str, list[str]] = {}

    @property
    def nodes(self) -> NodeView:
        return NodeView(self._nodes)

    @property
    def edges(self) -> list[tuple[str, str]]:
        return [(a, b) for a, succ in self._succ.items() for b in succ]

    def add_node(self, executable: Any, task_id: str | None = None,
                 skip_if_exists: bool = False) -> None:
        """Add ``executable`` as node ``task_id`` (default: its own id). A task given
        another id joins the graph as a copy under that id (results are stored under
        the node's id). An id that is taken raises `DuplicateTaskError`, unless
        ``skip_if_exists`` (then nothing changes)."""
        if task_id is not None and task_id != executable.task_id:
            executable = _renamed(executable, task_id)
        node_id = executable.task_id
        existing = self._nodes.get(node_id)
        if existing is not None and existing is not executable:
            if skip_if_exists:
                return
            raise DuplicateTaskError(node_id)
        if existing is None:
            self._nodes[node_id] = executable
            self._succ.setdefault(node_id, [])
            self._pred.setdefault(node_id, [])

    def get_edges(self) -> list[tuple[str, str]]:
        return self.edges

    def get_parallel_group_members(self, group_id: str) -> list[str]:
        """The member ids of parallel group ``group_id`` ([] if it is not a group)."""
        return list(getattr(self._nodes.get(group_id), "member_ids", []))

    @classmethod
    def from_parts(cls, nodes: dict[str, Any], succ: dict[str, list[str]],
                   pred: dict[str, list[str]]) -> TaskGraph:
        """A graph with exactly these nodes and edges (in their order)."""
        graph = cls()
        graph._nodes = nodes
        graph._succ = {n: list(succ.get(n, [])) for n in nodes}
        graph._pred = {n: list(pred.get(n, [])) for n in nodes}
        return graph

    def copy(self) -> TaskGraph:
        """A graph with the same nodes and edges that can change on its own."""
        clone = TaskGraph()
        clone._nodes = dict(self._nodes)
        clone._succ = {k: list(v) for k, v in self._succ.items()}
        clone._pred = {k: list(v) for k, v in self._pred.items()}
        return clone

    def clear(self) -> None:
        """Remove every node and edge."""
        self._nodes.clear()
        self._succ.clear()
        self._pred.clear()

    def add_edge(self, source: str, target: str) -> None:
        for node in (source, target):
            if node not in self._nodes:
                raise UnknownTaskError(node, "the workflow graph (edge)")
        if target not in self._succ[source]:
            self._succ[source].append(target)
            self._pred[target].append(source)

    def remove_node(self, node_id: str) -> None:
        self._nodes.pop(node_id, None)
        for other in self._succ.pop(node_id, []):
            self._pred[other].remove(node_id)
        for other in self._pred.pop(node_id, []):
            self._succ[other].remove(node_id)

    def rename_node(self, old: str, new: str) -> None:
        if new in self._nodes:
            raise DuplicateTaskError(new)
        self._nodes = {(new if k == old else k): v for k, v in self._nodes.items()}
        for table in (self._succ, self._pred):
            renamed = {(new if k == old else k): v for k, v in table.items()}
            for targets in renamed.values():
                targets[:] = [new if t == old else t for t in targets]
            table.clear()
            table.update(renamed)

    def has_node(self, node_id: str) -> bool:
        return node_id in self._nodes

    def get_node(self, node_id: str) -> Any:
        try:
            return self._nodes[node_id]
        except KeyError:
            raise UnknownTaskError(node_id, "the workflow graph") from None

    def get_node_or_none(self, node_id: str) -> Any:
        return self._nodes.get(node_id)

    def successors(self, node_id: str) -> list[str]:
        return list(self._succ.get(node_id, []))

    def predecessors(self, node_id: str) -> list[str]:
        return list(self._pred.get(node_id, []))

    def get_start_nodes(self) -> list[str]:
        return self.shape().roots()

    def shape(self, default_max_cycles: int = DEFAULT_MAX_CYCLES) -> GraphShape:
        """The structure the scheduler needs, without user code."""
        return GraphShape({nid: ex.node_shape(self, default_max_cycles)
                           for nid, ex in self._nodes.items()})

    def nx_graph(self) -> Any:
        """A networkx ``DiGraph`` copy (``nodes[id]["task"]`` is the executable), for
        Graflow code that works on networkx graphs; needs networkx."""
        networkx = require("networkx", "TaskGraph.nx_graph()")
        graph = networkx.DiGraph()
        for node_id, executable in self._nodes.items():
            graph.add_node(node_id, task=executable)
        graph.add_edges_from(self.edges)
        return graph

    def __str__(self) -> str:
        return render_text(DrawGraph.from_shape(self.shape()))

    def __repr__(self) -> str:
        return f"TaskGraph(nodes={list(self._nodes)}, edges={self.edges})"


class LayeredGraph(TaskGraph):
    """A view of a shared graph that keeps its own additions (tasks created with
    ``next_task`` while a batch runs) and never changes the graph it reads through to."""

    def __init__(self, base: TaskGraph) -> None:
        self._nodes = ChainMap({}, base._nodes)  # type: ignore[assignment]
        self._succ = ChainMap({}, base._succ)  # type: ignore[assignment]
        self._pred = ChainMap({}, base._pred)  # type: ignore[assignment]

    def get_node_or_none(self, node_id: str) -> Any:
        # Once per task run: each map once (ChainMap.get looks through them twice). A
        # renamed node left a plain dict.
        nodes = self._nodes
        if not isinstance(nodes, ChainMap):
            return nodes.get(node_id)
        for mapping in nodes.maps:
            node = mapping.get(node_id)
            if node is not None:
                return node
        return None

    def add_edge(self, source: str, target: str) -> None:
        for table in (self._succ, self._pred):
            for node in (source, target):
                if node in table and node not in table.maps[0]:  # type: ignore[attr-defined]
                    table[node] = list(table[node])  # copy on write
        super().add_edge(source, target)


def _renamed(executable: Any, task_id: str) -> Any:
    renamed = getattr(executable, "renamed", None)
    if renamed is None:
        raise GraphError(
            f"cannot add {type(executable).__name__} {executable.task_id!r} as node "
            f"{task_id!r}: only a task can join a graph under another id"
        )
    return renamed(task_id)


def base_shape(node_id: str, graph: TaskGraph | None, default_max_cycles: int) -> NodeShape:
    """The shape of a node with its edges in ``graph``; executables fill in the rest
    (their ``node_shape``)."""
    return NodeShape(
        node_id=node_id,
        successors=graph.successors(node_id) if graph else [],
        predecessors=graph.predecessors(node_id) if graph else [],
        max_cycles=default_max_cycles,
    )
