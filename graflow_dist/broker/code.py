"""CodeStore: workflow code in Redis: signed code blobs and graph manifests, each stored
by content hash (``{prefix}:code:<hash>``, ``{prefix}:blob:<graph hash>``), so that runs
of one graph share them and a graph submitted again is not stored again.

Nothing here unpickles: blobs are stored and read as bytes (workers verify and load them,
see `graflow_dist.wire.code`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis

from graflow_dist.broker.keys import Keyspace
from graflow_dist.wire.code import CodeBlob, GraphManifest

# Code stays this long after its last submission unless a run keeps it alive.
DEFAULT_BLOB_TTL_S = 7 * 24 * 3600
# An upload sends its pipeline once this much is queued.
_UPLOAD_FLUSH_BYTES = 4 << 20


class CodeUpload:
    """Stores code blobs as they are made, a few MB per round trip."""

    def __init__(self, client: redis.Redis, keyspace: Keyspace) -> None:
        self._keyspace = keyspace
        self._pipe = client.pipeline(transaction=False)
        self._queued = 0

    def add(self, code: CodeBlob) -> None:
        self._pipe.set(self._keyspace.code(code.hash), code.blob, ex=DEFAULT_BLOB_TTL_S)
        self._queued += len(code.blob)
        if self._queued >= _UPLOAD_FLUSH_BYTES:
            self.flush()

    def add_all(self, blobs: dict[str, bytes]) -> None:
        for blob_hash, blob in blobs.items():
            self.add(CodeBlob(blob_hash, blob, ()))

    def flush(self) -> None:
        self._pipe.execute()
        self._queued = 0

    def __enter__(self) -> CodeUpload:
        return self

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        if exc_type is None:
            self.flush()
        self._pipe.reset()


class CodeStore:
    """Graph manifests and code blobs of one deployment.

    Parameters
    ----------
    client:
        Redis client (bytes responses).
    keyspace:
        Key layout.
    """

    def __init__(self, client: redis.Redis, keyspace: Keyspace) -> None:
        self.client = client
        self.keyspace = keyspace

    def upload(self) -> CodeUpload:
        """A context that stores code blobs (``with store.upload() as up: up.add(b)``)."""
        return CodeUpload(self.client, self.keyspace)

    def refresh(self, graph_hash: str, blob_hashes: Iterable[str]) -> bool:
        """Give a stored graph (its manifest and code blobs) a full TTL again; False if
        any of them is gone (then it must be stored again)."""
        pipe = self.client.pipeline(transaction=False)
        for key in self.keys(graph_hash, blob_hashes):
            pipe.expire(key, DEFAULT_BLOB_TTL_S)
        return all(pipe.execute())

    def manifest(self, graph_hash: str) -> bytes | None:
        """The manifest of ``graph_hash`` (msgpack, see `GraphManifest`)."""
        return self.client.get(self.keyspace.blob(graph_hash))

    def blobs(self, hashes: Iterable[str]) -> dict[str, bytes]:
        """The signed code blobs stored under ``hashes`` (missing ones left out)."""
        wanted = list(dict.fromkeys(hashes))
        if not wanted:
            return {}
        found = self.client.mget([self.keyspace.code(h) for h in wanted])
        return {h: blob for h, blob in zip(wanted, found, strict=True) if blob is not None}

    def graph(self, graph_hash: str) -> tuple[bytes, dict[str, bytes]] | None:
        """A stored graph whole: its manifest and every code blob it names (None if the
        manifest is gone; a missing blob is left out, for the loader to report)."""
        manifest = self.manifest(graph_hash)
        if manifest is None:
            return None
        names = GraphManifest.decode(manifest, f"manifest of graph {graph_hash}").blobs
        return manifest, self.blobs(names)

    def keys(self, graph_hash: str, blob_hashes: Iterable[str]) -> list[str]:
        """The keys of a graph: its manifest and its code blobs."""
        return [self.keyspace.blob(graph_hash),
                *(self.keyspace.code(h) for h in dict.fromkeys(blob_hashes))]
