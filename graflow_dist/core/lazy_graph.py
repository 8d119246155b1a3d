"""LazyGraph: a read-only `TaskGraph` whose nodes and edges are fetched as they are
asked for, so a worker holds the code of the tasks it runs, not the whole graph's.

Workers wrap it in a `LayeredGraph` (tasks added with ``next_task`` go into the layer),
exactly as they wrap a graph loaded whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from graflow_dist.core.graph import TaskGraph

_ABSENT = object()


class GraphSource(Protocol):
    """Where a `LazyGraph` gets its nodes from (a worker: Redis, through the broker)."""

    def executable(self, node_id: str) -> Any | None:
        """The node's executable; None if the graph has no such node."""

    def contains(self, node_id: str) -> bool:
        """Whether the graph has the node (without loading its code)."""

    def edges(self, node_id: str) -> tuple[Sequence[str], Sequence[str]] | None:
        """``(successors, predecessors)`` of the node; None if there is no such node."""

    def node_ids(self) -> list[str]:
        """Every node id, in graph order."""


class _LazyMapping(Mapping[str, Any]):
    """A mapping over a fetch function; what it fetched it keeps (also misses)."""

    def __init__(self, fetch: Callable[[str], Any | None], ids: Callable[[], list[str]],
                 contains: Callable[[str], bool]) -> None:
        self._fetch = fetch
        self._ids = ids
        self._contains = contains
        self._seen: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        value = self._seen.get(key, _ABSENT)
        if value is _ABSENT:
            value = self._seen[key] = self._fetch(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        if key in self._seen:
            return self._seen[key] is not None
        return self._contains(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids())

    def __len__(self) -> int:
        return len(self._ids())


class LazyGraph(TaskGraph):
    """A graph read through ``source``; it cannot be changed (wrap it in a
    `LayeredGraph` for that)."""

    def __init__(self, source: GraphSource) -> None:
        edges, ids, has = source.edges, source.node_ids, source.contains
        self._nodes = _LazyMapping(source.executable, ids, has)  # type: ignore[assignment]
        self._succ = _LazyMapping(  # type: ignore[assignment]
            lambda n: None if (e := edges(n)) is None else e[0], ids, has)
        self._pred = _LazyMapping(  # type: ignore[assignment]
            lambda n: None if (e := edges(n)) is None else e[1], ids, has)
