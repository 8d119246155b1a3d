"""Value encoding of channels, results and checkpoints: exact round trips, no pickle
where msgpack is exact.

Plain data (None, bool, int, float, str, bytes, and lists / str-keyed dicts of them)
is msgpack; anything else (tuples, sets, dataclasses, numpy arrays, ...) is signed
cloudpickle, verified before it is loaded.
"""

from __future__ import annotations

from typing import Any

import msgpack

from graflow_dist.errors import WireError
from graflow_dist.wire.signing import dumps_signed, loads_signed

TAG_MSGPACK = b"m"
TAG_PICKLE = b"p"
TAG_LIST = b"l"  # a Redis list: msgpack array of encoded items (checkpoints)
_MAX_DEPTH = 32
_SCALARS = (type(None), bool, float, str, bytes)


def _plain(value: Any, depth: int = 0) -> bool:
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind is int:
        return -(2**63) <= value < 2**64
    if depth >= _MAX_DEPTH:
        return False
    if kind is list:
        return all(_plain(v, depth + 1) for v in value)
    if kind is dict:
        return all(type(k) is str and _plain(v, depth + 1) for k, v in value.items())
    return False


def encode_value(value: Any) -> bytes:
    if _plain(value):
        return TAG_MSGPACK + msgpack.packb(value, use_bin_type=True)
    return TAG_PICKLE + dumps_signed(value)


def encode_list_items(items: list[bytes]) -> bytes:
    """A Redis list of encoded items as one value (for checkpoints)."""
    return TAG_LIST + msgpack.packb(items, use_bin_type=True)


def decode_value(raw: bytes, what: str, *, nested: bool = False) -> Any:
    """Decode a stored value; ``what`` names it in errors (e.g. the channel key)."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise WireError(f"{what}: expected an encoded value, got {type(raw).__name__}")
    raw = bytes(raw)
    tag, body = raw[:1], raw[1:]
    if tag == TAG_MSGPACK:
        try:
            return msgpack.unpackb(body, raw=False, strict_map_key=False)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise WireError(f"{what}: corrupt msgpack value ({exc})") from None
    if tag == TAG_PICKLE:
        return loads_signed(body, what)
    if tag == TAG_LIST and not nested:  # items of a list are values, never lists again
        try:
            items = msgpack.unpackb(body, raw=False)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise WireError(f"{what}: corrupt list value ({exc})") from None
        if not isinstance(items, list) or not all(isinstance(i, bytes) for i in items):
            raise WireError(f"{what}: corrupt list value (not a list of encoded items)")
        return [decode_value(item, what, nested=True) for item in items]
    raise WireError(f"{what}: not a graflow-dist channel value (unknown tag {tag!r})")
