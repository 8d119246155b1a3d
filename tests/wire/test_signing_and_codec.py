"""Signed blobs and channel values: exact round trips, forgeries refused unloaded."""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from graflow_dist.errors import SignatureError, WireError
from graflow_dist.wire import signing
from graflow_dist.wire.values import TAG_MSGPACK, TAG_PICKLE, decode_value, encode_value


@dataclass(frozen=True)
class Point:
    x: int
    y: int


@pytest.mark.parametrize(
    "value",
    [None, True, 0, -(2**63), 2**64 - 1, 2**70, 1.5, float("inf"), "tëxt", b"\x00\xff",
     [1, [2, {"a": None}]], {"k": [1.0, "v"]}, (1, 2), {1, 2}, frozenset({"a"}),
     {1: "int key"}, Point(1, 2), Decimal("1.10"), [(1, 2)], {"t": (1,)}],
)
def test_channel_values_round_trip_exactly(value: object) -> None:
    decoded = decode_value(encode_value(value), "k")
    assert decoded == value
    assert type(decoded) is type(value)


def test_plain_data_is_msgpack_and_the_rest_signed_pickle() -> None:
    assert encode_value({"a": [1, "x"]})[:1] == TAG_MSGPACK
    assert encode_value((1, 2))[:1] == TAG_PICKLE


def test_a_forged_pickle_is_refused_before_it_is_loaded(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):  # noqa: ANN204
            return (os.system, (f"touch {marker}",))

    forged = TAG_PICKLE + signing.MAGIC + b"\x00" * signing.MAC_LEN + pickle.dumps(Exploit())
    with pytest.raises(SignatureError, match="signature does not verify"):
        decode_value(forged, "channel key 'x'")
    unsigned = TAG_PICKLE + pickle.dumps(Exploit())
    with pytest.raises(SignatureError, match="not a signed"):
        decode_value(unsigned, "channel key 'x'")
    assert not marker.exists()


def test_a_blob_signed_with_another_secret_is_refused() -> None:
    blob = signing.dumps_signed({"x": 1}, secret=b"other")
    with pytest.raises(SignatureError, match="another secret"):
        signing.loads_signed(blob, "graph abc", secret=b"ours")
    assert signing.loads_signed(blob, "graph abc", secret=b"other") == {"x": 1}


def test_unknown_value_tag_is_a_wire_error() -> None:
    with pytest.raises(WireError, match="unknown tag"):
        decode_value(b"zzz", "channel key 'x'")


def test_without_a_secret_a_private_key_file_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "keys" / "secret"
    monkeypatch.delenv(signing.SECRET_ENV, raising=False)
    monkeypatch.setenv(signing.SECRET_FILE_ENV, str(key_file))
    first = signing.load_secret()
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert signing.load_secret() == first and len(first) >= 32
