"""A `TaskGraph` as a cluster and a checkpoint keep it: code blobs plus a manifest
(`graflow_dist.wire.code`), and back.

`GraphCodeCache` remembers the split of graphs a client submitted, so a workflow
submitted again is neither pickled nor signed again: it is recognised by its structure
and by the identity of its executables and of their attributes (a task object changed
in place after it was submitted, e.g. a mutated bound argument, is not noticed).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from operator import is_
from typing import Any

from graflow_dist.core.graph import TaskGraph
from graflow_dist.core.task import ParallelGroup
from graflow_dist.errors import WireError
from graflow_dist.scheduler.specs import GraphShape
from graflow_dist.wire.code import (
    DEFAULT_BLOB_NODES,
    CodeBlob,
    GraphManifest,
    load_code,
    pack_code,
)
from graflow_dist.wire.messages import packb

# Graphs up to this many nodes keep their signed blobs in the client's cache (larger
# ones only their hashes: they are split again if Redis lost them).
DEFAULT_KEPT_NODES = 2_000
# Graphs larger than this are not cached at all: recognising one costs a good part of
# splitting it again, and few programs submit one such graph many times.
DEFAULT_CACHED_NODES = 2_000


@dataclass
class GraphCode:
    """A split graph: its manifest (whose hash is the graph's) and its code blobs,
    when kept (``blobs`` maps blob hash to signed blob)."""

    manifest: GraphManifest
    manifest_bytes: bytes
    graph_hash: str
    blobs: dict[str, bytes] | None

    @property
    def code_of(self) -> dict[str, str]:
        return self.manifest.code_of()


def split_graph(graph: TaskGraph, *, store: Callable[[CodeBlob], None] | None = None,
                keep: bool = True, max_nodes: int = DEFAULT_BLOB_NODES,
                secret: bytes | None = None) -> GraphCode:
    """Pickle and sign ``graph``'s executables as code blobs of at most ``max_nodes``
    nodes. Each blob goes to ``store`` as soon as it is made (a large graph is never
    held pickled whole); with ``keep`` the blobs are also returned."""
    order = list(graph.nodes)
    groups = _members_first(graph, [n for n in order
                                    if isinstance(graph.get_node(n), ParallelGroup)])
    plain = [n for n in order if not isinstance(graph.get_node(n), ParallelGroup)]
    # A group refers to its members by node id: its blob does not carry their code
    # (a worker that runs one member must not load every member).
    refs = {id(ex): (n, ex) for n in order for ex in [graph.get_node(n)]} if groups else None
    made: list[CodeBlob] = []
    kept: dict[str, bytes] | None = {} if keep else None
    packed = [pack_code(((n, graph.get_node(n)) for n in plain), max_nodes=max_nodes,
                        secret=secret),
              pack_code(((n, graph.get_node(n)) for n in groups), max_nodes=max_nodes,
                        refs=refs, secret=secret)]
    for code in (c for blobs in packed for c in blobs):
        if store is not None:
            store(code)
        if kept is not None:
            kept[code.hash] = code.blob
        made.append(CodeBlob(code.hash, b"", code.nodes))
    manifest = GraphManifest.build(order, groups, made, graph.successors,
                                   graph.predecessors)
    raw = manifest.encode()
    return GraphCode(manifest, raw, manifest.hash, kept)


def graph_from_code(manifest_bytes: bytes, blobs: Mapping[str, bytes], what: str,
                    secret: bytes | None = None) -> TaskGraph:
    """Rebuild a graph from its manifest and every blob it names (each verified before
    it is unpickled); a missing or mismatched blob raises `WireError` naming ``what``."""
    manifest = GraphManifest.decode(manifest_bytes, f"{what}: manifest")
    loaded: dict[str, Any] = {}

    def resolve(node_id: str) -> Any:
        # Groups come after the nodes they refer to (see `split_graph`).
        if node_id not in loaded:
            raise WireError(f"{what}: a group refers to node {node_id!r}, not loaded yet")
        return loaded[node_id]

    for blob_hash in manifest.blobs:
        blob = blobs.get(blob_hash)
        if blob is None:
            raise WireError(f"{what}: code blob {blob_hash} is missing")
        load_code(blob, f"{what}: code blob {blob_hash}", secret, resolve, loaded)
    missing = [n for n in manifest.nodes if n not in loaded]
    if missing:
        raise WireError(f"{what}: code of {len(missing)} node(s) missing ({missing[:3]})")
    return TaskGraph.from_parts({n: loaded[n] for n in manifest.nodes},
                                manifest.successors(), manifest.predecessors())


def _members_first(graph: TaskGraph, groups: list[str]) -> list[str]:
    """``groups`` ordered so that a group nested in another comes before it."""
    chosen = set(groups)
    out: list[str] = []
    seen: set[str] = set()
    for group in groups:
        stack: list[tuple[str, bool]] = [(group, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                out.append(node)
                continue
            if node in seen:
                continue
            seen.add(node)
            stack.append((node, True))
            stack.extend((m, False) for m in reversed(graph.get_node(node).member_ids)
                         if m in chosen and m not in seen)
    return out


@dataclass
class _Entry:
    fingerprint: bytes
    identities: list[Any]
    code: GraphCode


class GraphCodeCache:
    """The split of each graph a client submitted, while the graph object lives."""

    def __init__(self, kept_nodes: int = DEFAULT_KEPT_NODES,
                 cached_nodes: int = DEFAULT_CACHED_NODES) -> None:
        self.kept_nodes = kept_nodes
        self.cached_nodes = cached_nodes
        self._entries: weakref.WeakKeyDictionary[TaskGraph, _Entry] = (
            weakref.WeakKeyDictionary())

    def key(self, graph: TaskGraph, shape: GraphShape) -> bytes | None:
        """What a graph is recognised by (its packed shape); None for a graph too
        large to cache. Take it before code blobs are written into ``shape``."""
        if len(shape.nodes) > self.cached_nodes:
            return None
        return packb([node.to_dict() for node in shape.nodes.values()])

    def get(self, graph: TaskGraph, key: bytes | None) -> GraphCode | None:
        """The cached split if ``graph`` has the same structure (``key``) and the same
        executables as when it was split."""
        entry = None if key is None else self._entries.get(graph)
        if entry is None or entry.fingerprint != key:
            return None
        now = _identities(graph)
        if len(now) != len(entry.identities) or not all(map(is_, now, entry.identities)):
            return None
        return entry.code

    def put(self, graph: TaskGraph, key: bytes | None, code: GraphCode) -> None:
        if key is None:
            return
        if not self.keeps(graph):
            code = GraphCode(code.manifest, code.manifest_bytes, code.graph_hash, None)
        self._entries[graph] = _Entry(key, _identities(graph), code)

    def keeps(self, graph: TaskGraph) -> bool:
        """Whether the split of ``graph`` keeps its blobs."""
        return len(graph.nodes) <= self.kept_nodes


def _identities(graph: TaskGraph) -> list[Any]:
    """Each executable and the values of its attributes, in order: compared by
    identity (holding the objects, not their ids, so a recycled id cannot look
    unchanged)."""
    out: list[Any] = []
    for node_id in graph.nodes:
        executable = graph.get_node(node_id)
        out.append(executable)
        out.extend(vars(executable).values())
    return out
