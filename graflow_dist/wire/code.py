"""A workflow's code, split for a cluster: signed code blobs of a few hundred nodes each,
stored by content hash, next to a structure-only manifest.

A *code blob* pickles ``(node id, executable)`` pairs one after another with one pickler
(objects shared by its nodes, such as the function of many bound task instances, are
pickled once) and is signed as a whole. Workers load only the blobs that hold the tasks
they run and keep a few; the coordinator copies blobs into checkpoints without
unpickling them; a graph whose blobs are already stored is not stored again.

The *manifest* is plain msgpack: node ids in graph order, the blob of each, and the
edges (successors and predecessors in their order), so that the whole `TaskGraph` can be
rebuilt (checkpoints, ``WorkflowRun.context()``). Its content hash is the graph's hash.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import cloudpickle

from graflow_dist.errors import WireError
from graflow_dist.wire import fields as f
from graflow_dist.wire.messages import packb, unpackb
from graflow_dist.wire.signing import MAC_LEN, MAGIC, content_hash, sign, verify

MANIFEST_VERSION = 1
# A code blob closes after this many nodes or once its pickle reaches this size.
DEFAULT_BLOB_NODES = 256
DEFAULT_BLOB_BYTES = 1 << 20


@dataclass(frozen=True)
class CodeBlob:
    """One signed code blob and the nodes it holds."""

    hash: str
    blob: bytes
    nodes: tuple[str, ...]


class _Pickler(cloudpickle.Pickler):
    """Pickles other nodes' executables as references (``refs``: id -> (node id,
    executable)), so that a group's blob does not carry its members' code."""

    def __init__(self, file: io.BytesIO, refs: Mapping[int, tuple[str, Any]] | None) -> None:
        super().__init__(file)
        self.refs = refs
        self.top: Any = None

    def persistent_id(self, obj: Any) -> str | None:  # noqa: D102 - pickle's hook
        if self.refs is None or obj is self.top:
            return None
        ref = self.refs.get(id(obj))
        return ref[0] if ref is not None and ref[1] is obj else None


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, resolve: Callable[[str], Any] | None,
                 what: str) -> None:
        super().__init__(file)
        self.resolve = resolve
        self.what = what

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102 - pickle's hook
        if self.resolve is None or not isinstance(pid, str):
            raise WireError(f"{self.what}: refers to node {pid!r}, which cannot be looked up")
        return self.resolve(pid)


def pack_code(nodes: Iterable[tuple[str, Any]], *, max_nodes: int = DEFAULT_BLOB_NODES,
              max_bytes: int = DEFAULT_BLOB_BYTES,
              refs: Mapping[int, tuple[str, Any]] | None = None,
              secret: bytes | None = None) -> Iterator[CodeBlob]:
    """Signed blobs of ``(node id, executable)`` pairs, produced one at a time (a large
    graph never sits in memory pickled whole). With ``refs`` (``id(executable)`` ->
    ``(node id, executable)`` of every node), executables of other nodes met inside a
    node are stored as references to them (loading resolves them, see `load_code`)."""
    buffer = io.BytesIO()
    pickler = _Pickler(buffer, refs)
    held: list[str] = []
    for node_id, executable in nodes:
        pickler.top = executable
        pickler.dump((node_id, executable))
        held.append(node_id)
        if len(held) >= max_nodes or buffer.tell() >= max_bytes:
            # The memo holds everything pickled so far, and a pickler lingers until
            # the cyclic GC finds it: let go of it now.
            pickler.clear_memo()
            yield _blob(buffer.getvalue(), held, secret)
            buffer = io.BytesIO()
            pickler = _Pickler(buffer, refs)
            held = []
    if held:
        yield _blob(buffer.getvalue(), held, secret)


def _blob(payload: bytes, held: list[str], secret: bytes | None) -> CodeBlob:
    return CodeBlob(content_hash(payload), sign(payload, secret), tuple(held))


def load_code(blob: bytes, what: str, secret: bytes | None = None,
              resolve: Callable[[str], Any] | None = None,
              into: dict[str, Any] | None = None) -> dict[str, Any]:
    """The executables of a code blob by node id (added to ``into`` one by one, if
    given); the signature is verified before anything is unpickled (`SignatureError`
    naming ``what`` otherwise). ``resolve`` turns a reference to another node into its
    executable (a node earlier in the same blob is in ``into`` by then)."""
    stream = io.BytesIO(verify(blob, what, secret))
    unpickler = _Unpickler(stream, resolve, what)
    out: dict[str, Any] = {} if into is None else into
    end = len(stream.getbuffer())
    while stream.tell() < end:
        node_id, executable = unpickler.load()
        out[node_id] = executable
    return out


def blob_hash(blob: bytes) -> str:
    """The content hash of a signed blob's payload (what it is stored under)."""
    return content_hash(blob[len(MAGIC) + MAC_LEN:])


@dataclass
class GraphManifest:
    """The structure of a graph and where each node's code is.

    ``nodes`` are in graph order. The code blobs, in ``blobs`` order, hold ``sizes[i]``
    nodes each, taken in *packing order*: the nodes that are not ``groups`` in graph
    order, then ``groups`` (so that a blob's nodes need not be listed). ``edges`` are
    flat ``(source, target)`` index pairs in each source's successor order,
    ``back_edges`` ``(target, source)`` pairs in each target's predecessor order.
    """

    nodes: list[str]
    groups: list[str]
    blobs: list[str]
    sizes: list[int]
    edges: list[int] = field(default_factory=list)
    back_edges: list[int] = field(default_factory=list)

    @classmethod
    def build(cls, order: list[str], groups: list[str], blobs: list[CodeBlob],
              successors: Callable[[str], list[str]], predecessors: Callable[[str], list[str]]
              ) -> GraphManifest:
        """``blobs`` must hold the nodes in packing order (see the class)."""
        index = {node_id: i for i, node_id in enumerate(order)}
        edges: list[int] = []
        back: list[int] = []
        for i, node_id in enumerate(order):
            for succ in successors(node_id):
                edges += (i, index[succ])
            for pred in predecessors(node_id):
                back += (i, index[pred])
        manifest = cls(order, groups, [b.hash for b in blobs], [len(b.nodes) for b in blobs],
                       edges, back)
        if [n for b in blobs for n in b.nodes] != list(manifest.packing_order()):
            raise ValueError("code blobs do not hold the nodes in packing order")
        return manifest

    def packing_order(self) -> Iterator[str]:
        grouped = set(self.groups)
        yield from (n for n in self.nodes if n not in grouped)
        yield from self.groups

    def code_of(self) -> dict[str, str]:
        """Node id -> the hash of the blob holding its executable."""
        order = self.packing_order()
        return {next(order): blob for blob, size in zip(self.blobs, self.sizes, strict=True)
                for _ in range(size)}

    def successors(self) -> dict[str, list[str]]:
        return self._adjacency(self.edges)

    def predecessors(self) -> dict[str, list[str]]:
        return self._adjacency(self.back_edges)

    def _adjacency(self, pairs: list[int]) -> dict[str, list[str]]:
        names = self.nodes
        out: dict[str, list[str]] = {}
        for k in range(0, len(pairs), 2):
            out.setdefault(names[pairs[k]], []).append(names[pairs[k + 1]])
        return out

    def encode(self) -> bytes:
        return packb({"v": MANIFEST_VERSION, "n": self.nodes, "g": self.groups,
                      "h": self.blobs, "c": self.sizes, "e": self.edges, "p": self.back_edges})

    @property
    def hash(self) -> str:
        return content_hash(self.encode())

    @classmethod
    def decode(cls, raw: bytes, what: str) -> GraphManifest:
        body = f.mapping(unpackb(raw, what), what)
        if body.get("v") != MANIFEST_VERSION:
            raise WireError(f"{what}: unsupported graph manifest version {body.get('v')!r}")
        nodes = f.text_list(body, "n", what)
        groups = f.text_list(body, "g", what)
        blobs = f.text_list(body, "h", what)
        sizes, edges, back = body.get("c"), body.get("e"), body.get("p")
        count = len(nodes)
        known = set(nodes)
        if not (_counts(sizes, len(blobs), count) and _pairs(edges, count)
                and _pairs(back, count) and len(set(groups)) == len(groups)
                and known.issuperset(groups) and len(known) == count):
            raise WireError(f"{what}: malformed graph manifest (blob sizes, groups or edges)")
        return cls(nodes, groups, blobs, sizes, edges, back)


def _counts(value: Any, blobs: int, nodes: int) -> bool:
    return (isinstance(value, list) and len(value) == blobs
            and all(type(n) is int and n > 0 for n in value) and sum(value) == nodes)


def _pairs(value: Any, nodes: int) -> bool:
    return isinstance(value, list) and len(value) % 2 == 0 and all(
        type(i) is int and 0 <= i < nodes for i in value)
