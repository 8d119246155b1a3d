"""A run's channel keys as raw (still encoded) values: read for checkpoints, written at
submission, found by SCAN with an escaped pattern (a session id is never a glob)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgpack
import redis

from graflow_dist.broker.keys import RunKeys
from graflow_dist.wire.values import TAG_LIST, encode_list_items

SCAN_COUNT = 500
_GLOB_SPECIAL = frozenset(b"*?[]\\")


def glob_escape(text: str) -> bytes:
    """``text`` as a literal in a Redis MATCH pattern."""
    out = bytearray()
    for byte in text.encode():
        if byte in _GLOB_SPECIAL:
            out.append(ord("\\"))
        out.append(byte)
    return bytes(out)


def channel_key_names(client: redis.Redis, keys: RunKeys) -> Iterator[bytes]:
    """Every Redis key of the run's channel."""
    return client.scan_iter(match=glob_escape(keys.channel_prefix) + b"*", count=SCAN_COUNT)


def read_channel(client: redis.Redis, keys: RunKeys) -> dict[str, bytes]:
    """All channel values of a run, encoded (lists as one list value), without
    unpickling anything. Keys that hold neither (someone else wrote them) are left out."""
    base = keys.channel_prefix
    names = list(channel_key_names(client, keys))
    if not names:
        return {}
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.get(name)
    values: dict[str, bytes] = {}
    lists: list[bytes] = []
    for name, raw in zip(names, pipe.execute(raise_on_error=False), strict=True):
        if isinstance(raw, Exception):
            lists.append(name)
        elif raw is not None:
            values[name.decode(errors="replace")[len(base):]] = raw
    if lists:
        pipe = client.pipeline(transaction=False)
        for name in lists:
            pipe.lrange(name, 0, -1)
        for name, items in zip(lists, pipe.execute(raise_on_error=False), strict=True):
            if not isinstance(items, Exception):
                values[name.decode(errors="replace")[len(base):]] = encode_list_items(items)
    return values


def queue_channel_writes(pipe: Any, keys: RunKeys, values: dict[str, bytes]) -> None:
    """Queue commands that restore ``values`` (from `read_channel` or a checkpoint)."""
    for key, raw in values.items():
        full = keys.channel(key)
        pipe.delete(full)
        if raw[:1] == TAG_LIST:
            items = msgpack.unpackb(raw[1:], raw=False)
            if items:
                pipe.rpush(full, *items)
        else:
            pipe.set(full, raw)


def clear_channel(client: redis.Redis, keys: RunKeys) -> None:
    names = list(channel_key_names(client, keys))
    for start in range(0, len(names), SCAN_COUNT):
        client.delete(*names[start:start + SCAN_COUNT])
