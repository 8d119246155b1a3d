"""Code blobs and graph manifests: what a graph's code becomes on a cluster."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import pytest

from graflow_dist.errors import SignatureError, WireError
from graflow_dist.wire.code import (
    CodeBlob,
    GraphManifest,
    blob_hash,
    load_code,
    pack_code,
)
from graflow_dist.wire.messages import packb
from graflow_dist.wire.signing import sign


def shared_function(x: int) -> int:
    return x + 1


def test_blobs_close_at_their_node_limit_and_round_trip() -> None:
    items = [(f"n{i}", (shared_function, i)) for i in range(600)]
    blobs = list(pack_code(items, max_nodes=256))
    assert [len(b.nodes) for b in blobs] == [256, 256, 88]
    loaded: dict[str, Any] = {}
    for code in blobs:
        assert blob_hash(code.blob) == code.hash  # stored under its payload's hash
        loaded.update(load_code(code.blob, "test"))
    assert list(loaded) == [n for n, _ in items]
    assert loaded["n7"][1] == 7 and loaded["n7"][0](1) == 2


def test_a_blob_closes_once_its_pickle_is_large() -> None:
    items = [(f"n{i}", bytes([i]) * 4000) for i in range(10)]  # distinct objects
    blobs = list(pack_code(items, max_nodes=256, max_bytes=10_000))
    assert [len(b.nodes) for b in blobs] == [3, 3, 3, 1]


def test_objects_shared_by_the_nodes_of_a_blob_are_pickled_once() -> None:
    big = list(range(20_000))
    one = list(pack_code([("a", big)]))[0]
    two = list(pack_code([("a", big), ("b", big)]))[0]
    assert len(two.blob) < len(one.blob) + 100
    loaded = load_code(two.blob, "test")
    assert loaded["a"] is loaded["b"]


class TouchOnUnpickle:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (self.marker,))


def test_a_forged_blob_is_refused_before_anything_is_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(("a", TouchOnUnpickle(marker)))
    for forged in (sign(payload, b"another secret"), payload,
                   list(pack_code([("a", 1)]))[0].blob[:-1] + b"\x00"):
        with pytest.raises(SignatureError, match="code blob X"):
            load_code(forged, "code blob X")
    assert not marker.exists()


def test_manifest_round_trips_and_its_hash_is_its_content() -> None:
    succ = {"a": ["b", "G"], "b": ["c"], "c": [], "G": []}
    pred = {"a": [], "b": ["a"], "c": ["b"], "G": ["a"]}
    blobs = [CodeBlob("h0", b"", ("a", "b")), CodeBlob("h1", b"", ("c",)),
             CodeBlob("h2", b"", ("G",))]
    manifest = GraphManifest.build(["a", "G", "b", "c"], ["G"], blobs, succ.__getitem__,
                                   pred.__getitem__)
    again = GraphManifest.decode(manifest.encode(), "m")
    assert again == manifest and again.hash == manifest.hash
    assert manifest.code_of() == {"a": "h0", "b": "h0", "c": "h1", "G": "h2"}
    assert again.successors() == {"a": ["b", "G"], "b": ["c"]}
    assert again.predecessors() == {"b": ["a"], "c": ["b"], "G": ["a"]}
    other = GraphManifest.build(["a", "G", "b", "c"], ["G"], blobs[:2] + [
        CodeBlob("h3", b"", ("G",))], succ.__getitem__, pred.__getitem__)
    assert other.hash != manifest.hash
    with pytest.raises(ValueError, match="packing order"):
        GraphManifest.build(["a", "G", "b", "c"], ["G"], blobs[::-1], succ.__getitem__,
                            pred.__getitem__)


@pytest.mark.parametrize(("body", "message"), [
    ({"v": 9, "n": [], "g": [], "h": [], "c": [], "e": [], "p": []}, "manifest version 9"),
    ({"v": 1, "n": ["a"], "g": [], "h": ["h"], "c": [2], "e": [], "p": []}, "blob sizes"),
    ({"v": 1, "n": ["a"], "g": [], "h": ["h"], "c": [1], "e": [0, 5], "p": []}, "edges"),
    ({"v": 1, "n": ["a"], "g": [], "h": ["h"], "c": [1], "e": [0], "p": []}, "edges"),
    ({"v": 1, "n": ["a"], "g": ["x"], "h": ["h"], "c": [1], "e": [], "p": []}, "groups"),
    ({"v": 1, "n": [1], "g": [], "h": ["h"], "c": [1], "e": [], "p": []}, "'n'"),
])
def test_malformed_manifests_are_refused(body: dict[str, Any], message: str) -> None:
    with pytest.raises(WireError, match=message):
        GraphManifest.decode(packb(body), "manifest of graph g")
