"""The code a worker holds: the code blobs of the tasks it ran lately (not whole graphs),
and each run's graph seen through them.

`CodeCache` keeps loaded blobs in an LRU bounded by nodes; every blob is verified (HMAC)
before it is unpickled. `RunGraphSource` answers a `LazyGraph`'s questions for one
batch: a task's code from the blob its batch names, anything else (edges, other nodes,
tasks added while the run ran) from the run's data in Redis, when asked.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from graflow_dist.broker import Broker
from graflow_dist.core.dynamic import unwrap
from graflow_dist.errors import CodeLoadError, GraflowError, WireError
from graflow_dist.scheduler.specs import NodeShape
from graflow_dist.wire.code import GraphManifest, load_code
from graflow_dist.wire.messages import Batch
from graflow_dist.wire.signing import loads_signed

DEFAULT_CODE_CACHE_NODES = 4096
DEFAULT_DYNAMIC_CACHE = 1024
_PREFETCH_KEPT = 64  # blobs fetched ahead and not yet loaded, at most
_GRAPHS_KEPT = 4  # graphs whose node lists are kept (asked for by next_task)


class CodeCache:
    """Executables of the code blobs this worker loaded, least recently used first out
    once more than ``max_nodes`` nodes are held (the blob in use always stays)."""

    def __init__(self, broker: Broker, max_nodes: int = DEFAULT_CODE_CACHE_NODES) -> None:
        self.broker = broker
        self.max_nodes = max_nodes
        self._loaded: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._held = 0
        self._fetched: dict[str, bytes] = {}
        self._loading: dict[str, dict[str, Any]] = {}
        self._graph_nodes: OrderedDict[str, list[str]] = OrderedDict()
        self._dynamic: OrderedDict[tuple[str, str], Any] = OrderedDict()

    @property
    def nodes_held(self) -> int:
        return self._held

    def prefetch(self, hashes: Iterable[str]) -> None:
        """Fetch the blobs of ``hashes`` not held yet, in one round trip (loaded when
        first used)."""
        missing = [h for h in dict.fromkeys(hashes)
                   if h not in self._loaded and h not in self._fetched]
        if not missing:
            return
        if len(self._fetched) + len(missing) > _PREFETCH_KEPT:
            self._fetched.clear()  # fetched for batches that never used them
        self._fetched.update(self.broker.runs.code.blobs(missing))

    def executables(self, blob_hash: str, what: str,
                    resolve: Callable[[str], Any] | None = None) -> dict[str, Any]:
        """The executables of blob ``blob_hash`` by node id; ``resolve`` looks up the
        nodes a group refers to (only when a group's blob is loaded)."""
        loaded = self._loaded.get(blob_hash)
        if loaded is not None:
            self._loaded.move_to_end(blob_hash)
            return loaded
        if blob_hash in self._loading:  # a group nested in one being loaded
            return self._loading[blob_hash]
        raw = self._fetched.pop(blob_hash, None)
        if raw is None:
            raw = self.broker.runs.code.blobs([blob_hash]).get(blob_hash)
        if raw is None:
            raise WireError(f"{what}: code blob {blob_hash} is not in Redis (expired or "
                            "never stored)")
        loaded = self._loading[blob_hash] = {}
        try:
            load_code(raw, f"{what}: code blob {blob_hash}", resolve=resolve, into=loaded)
        except GraflowError:
            raise
        except Exception as exc:  # verified, but needs what this worker lacks
            raise CodeLoadError(f"{what}: code blob {blob_hash} cannot be loaded on this "
                                f"worker ({type(exc).__name__}: {exc})") from exc
        finally:
            del self._loading[blob_hash]
        self._loaded[blob_hash] = loaded
        self._held += len(loaded)
        while self._held > self.max_nodes and len(self._loaded) > 1:
            _hash, dropped = self._loaded.popitem(last=False)
            self._held -= len(dropped)
        return loaded

    def graph_nodes(self, graph_hash: str, what: str) -> list[str]:
        """The nodes of a graph as submitted, in graph order (from its manifest)."""
        nodes = self._graph_nodes.get(graph_hash)
        if nodes is None:
            raw = self.broker.runs.code.manifest(graph_hash)
            if raw is None:
                raise WireError(f"{what}: its manifest is not in Redis (expired?)")
            nodes = GraphManifest.decode(raw, f"{what}: manifest").nodes
            self._graph_nodes[graph_hash] = nodes
            while len(self._graph_nodes) > _GRAPHS_KEPT:
                self._graph_nodes.popitem(last=False)
        self._graph_nodes.move_to_end(graph_hash)
        return nodes

    def dynamic(self, session_id: str, task_id: str) -> Any | None:
        """A task added while run ``session_id`` ran (``next_task``), or None."""
        key = (session_id, task_id)
        if key in self._dynamic:
            self._dynamic.move_to_end(key)
            return self._dynamic[key]
        blob = self.broker.runs.dynamic_blob(session_id, task_id)
        if blob is None:
            return None
        task = unwrap(loads_signed(blob, f"dynamic task {task_id!r} of run {session_id}"))
        self._dynamic[key] = task
        while len(self._dynamic) > DEFAULT_DYNAMIC_CACHE:
            self._dynamic.popitem(last=False)
        return task


class RunGraphSource:
    """A run's graph as the `LazyGraph` of one batch reads it (see `GraphSource`)."""

    def __init__(self, cache: CodeCache, batch: Batch) -> None:
        self.cache = cache
        self.session_id = batch.session_id
        self.what = f"graph {batch.graph_hash} of run {batch.session_id}"
        self.graph_hash = batch.graph_hash
        self.code_of = batch.code
        self._shapes: dict[str, NodeShape | None] = {}
        self._nodes: set[str] | None = None
        self._dynamic: list[str] | None = None

    def executable(self, node_id: str) -> Any | None:
        blob = self.code_of.get(node_id)
        if blob is None:
            added = self.cache.dynamic(self.session_id, node_id)
            if added is not None:
                return added
            shape = self._shape(node_id)
            if shape is None or not shape.code:
                return None
            blob = shape.code
        return self.cache.executables(blob, self.what, self.executable).get(node_id)

    def contains(self, node_id: str) -> bool:
        if node_id in self.code_of or node_id in self._dynamic_ids():
            return True
        if self._nodes is None:
            self._nodes = set(self.cache.graph_nodes(self.graph_hash, self.what))
        return node_id in self._nodes

    def edges(self, node_id: str) -> tuple[Sequence[str], Sequence[str]] | None:
        shape = self._shape(node_id)
        return None if shape is None else (shape.successors, shape.predecessors)

    def node_ids(self) -> list[str]:
        nodes = self.cache.graph_nodes(self.graph_hash, self.what)
        known = set(nodes)
        return [*nodes, *(n for n in self._dynamic_ids() if n not in known)]

    def _dynamic_ids(self) -> list[str]:
        """Tasks added while the run ran, as of the first time this batch asked."""
        if self._dynamic is None:
            self._dynamic = self.cache.broker.runs.dynamic_ids(self.session_id)
        return self._dynamic

    def _shape(self, node_id: str) -> NodeShape | None:
        if node_id not in self._shapes:
            self._shapes[node_id] = self.cache.broker.runs.node_shapes(
                self.session_id, [node_id]).get(node_id)
        return self._shapes[node_id]
