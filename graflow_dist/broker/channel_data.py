"""A run's channel keys as raw (still encoded) values: read for checkpoints, written at
submission, cleared, expired.

Every writer of a channel key also adds its name to the run's channel index (a SET,
`RunKeys.channel_index`), so a run's keys are found there, never by SCAN (whose cost
grows with the whole keyspace, not with the run). The index may name a key that has
expired or was never written (a writer that stopped in between): readers skip those.
"""

from __future__ import annotations

from typing import Any

import msgpack
import redis

from graflow_dist.broker.keys import RunKeys
from graflow_dist.wire.values import TAG_LIST, encode_list_items

_DELETE_CHUNK = 500
Command = list[Any]


def channel_names(client: redis.Redis, keys: RunKeys) -> list[str]:
    """The channel keys the run's index names (some may no longer exist)."""
    return [m.decode(errors="replace") for m in client.smembers(keys.channel_index)]


def channel_key_names(client: redis.Redis, keys: RunKeys) -> list[bytes]:
    """Every existing Redis key of the run's channel (full names)."""
    names = channel_names(client, keys)
    if not names:
        return []
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.exists(keys.channel(name))
    return [keys.channel(n).encode() for n, found in zip(names, pipe.execute(), strict=True)
            if found]


def read_channel(client: redis.Redis, keys: RunKeys) -> dict[str, bytes]:
    """All channel values of a run, encoded (lists as one list value), without
    unpickling anything. Keys that hold neither (someone else wrote them) are left out."""
    names = channel_names(client, keys)
    if not names:
        return {}
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.get(keys.channel(name))
    values: dict[str, bytes] = {}
    lists: list[str] = []
    for name, raw in zip(names, pipe.execute(raise_on_error=False), strict=True):
        if isinstance(raw, Exception):
            lists.append(name)
        elif raw is not None:
            values[name] = raw
    if lists:
        pipe = client.pipeline(transaction=False)
        for name in lists:
            pipe.lrange(keys.channel(name), 0, -1)
        for name, items in zip(lists, pipe.execute(raise_on_error=False), strict=True):
            if not isinstance(items, Exception):
                values[name] = encode_list_items(items)
    return values


def channel_write_commands(keys: RunKeys, values: dict[str, bytes]) -> list[Command]:
    """Commands that restore ``values`` (from `read_channel` or a checkpoint), index
    included."""
    if not values:
        return []
    cmds: list[Command] = [["SADD", keys.channel_index, *values]]
    for key, raw in values.items():
        full = keys.channel(key)
        cmds.append(["DEL", full])
        if raw[:1] == TAG_LIST:
            items = msgpack.unpackb(raw[1:], raw=False)
            if items:
                cmds.append(["RPUSH", full, *items])
        else:
            cmds.append(["SET", full, raw])
    return cmds


def queue_channel_writes(pipe: Any, keys: RunKeys, values: dict[str, bytes]) -> None:
    """Queue `channel_write_commands` on ``pipe``."""
    for cmd in channel_write_commands(keys, values):
        pipe.execute_command(*cmd)


def clear_channel(client: redis.Redis, keys: RunKeys) -> None:
    names = [keys.channel(n) for n in channel_names(client, keys)]
    for start in range(0, len(names), _DELETE_CHUNK):
        client.delete(*names[start:start + _DELETE_CHUNK])
    client.delete(keys.channel_index)
