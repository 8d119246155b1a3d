"""RuntimeGraph: what actually ran, as a tracer records it (nodes with status and
times, parent/child and group edges)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graflow_dist.optional import require


class RuntimeGraph:
    """A small directed graph with attributes; ``nodes[id]`` is the node's attribute
    dict and ``edges`` the ``(source, target)`` pairs, as in networkx."""

    def __init__(self) -> None:
        self._nodes: dict[str, dict[str, Any]] = {}
        self._edges: dict[tuple[str, str], dict[str, Any]] = {}

    @property
    def nodes(self) -> dict[str, dict[str, Any]]:
        return self._nodes

    @property
    def edges(self) -> list[tuple[str, str]]:
        return list(self._edges)

    def edge_data(self, source: str, target: str) -> dict[str, Any]:
        return self._edges[(source, target)]

    def add_node(self, node_id: str, **attrs: Any) -> None:
        self._nodes.setdefault(node_id, {}).update(attrs)

    def add_edge(self, source: str, target: str, **attrs: Any) -> None:
        self._edges.setdefault((source, target), {}).update(attrs)

    def successors(self, node_id: str) -> list[str]:
        return [b for a, b in self._edges if a == node_id]

    def number_of_nodes(self) -> int:
        return len(self._nodes)

    def number_of_edges(self) -> int:
        return len(self._edges)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    def __iter__(self) -> Iterator[str]:
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def to_networkx(self) -> Any:
        """A networkx ``DiGraph`` copy (needs networkx)."""
        networkx = require("networkx", "RuntimeGraph.to_networkx()")
        graph = networkx.DiGraph()
        for node_id, attrs in self._nodes.items():
            graph.add_node(node_id, **attrs)
        for (a, b), attrs in self._edges.items():
            graph.add_edge(a, b, **attrs)
        return graph

    def __repr__(self) -> str:
        return f"RuntimeGraph(nodes={len(self._nodes)}, edges={len(self._edges)})"
