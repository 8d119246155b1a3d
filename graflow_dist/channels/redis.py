"""RedisChannel: the run's shared state in Redis, visible to every worker.

Keys are ``{prefix}:ch:{session_id}:{key}``, each named in the run's channel index as it
is written (see `graflow_dist.broker.channel_data`). Values use the exact codec of
`graflow_dist.wire.values`; lists written with ``append``/``prepend`` are Redis
lists, so appends are atomic and O(1).

A write that adds (``append``, ``prepend``, ``atomic_add``) happens once per call even
when the connection drops between it and its reply and it is sent again (task code's
client retries through a Redis restart): each call marks itself applied under an id
of its own, for `WRITE_MARK_TTL_S`. The channel's next such write deletes the mark of
the last one whose reply came, so a counter bumped in a loop leaves one mark, not one
per call.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from redis.exceptions import ResponseError, WatchError
from redis.lock import Lock

from graflow_dist import limits
from graflow_dist.broker.channel_data import channel_key_names, clear_channel, read_channel
from graflow_dist.broker.keys import Keyspace, RunKeys
from graflow_dist.broker.scripts import RefusedResult, source
from graflow_dist.channels.base import DEFAULT_LOCK_TIMEOUT_S, Channel, check_number
from graflow_dist.errors import WireError
from graflow_dist.names import check_session_id
from graflow_dist.wire.values import decode_value, encode_value

# How long a write that adds is remembered as applied: it is sent again within the
# client's retries (seconds), if at all.
WRITE_MARK_TTL_S = 600


def _wrong_type(exc: Exception) -> bool:
    # Inside a transaction redis-py prefixes the server's message ("Command # 1 ...").
    return isinstance(exc, ResponseError) and "WRONGTYPE" in str(exc)


class _RetriedLock(Lock):
    """redis-py's lock, also acquired when its SET was sent again after the reply was
    lost: the first one took it (the key holds our token), the second was refused."""

    def do_acquire(self, token: str) -> bool:
        return super().do_acquire(token) or self.redis.get(self.name) == token


class RedisChannel(Channel):
    """A channel stored in Redis under the session's namespace.

    Parameters
    ----------
    name:
        The session id.
    client:
        A redis-py client (bytes responses).
    prefix:
        The deployment prefix (``GRAFLOW_DIST_PREFIX``).
    max_value_bytes:
        Largest encoded value `set`/`append` store (default: ``GRAFLOW_DIST_MAX_VALUE_BYTES``).
    """

    backend = "redis"

    def __init__(self, name: str, client: redis.Redis, prefix: str | None = None,
                 max_value_bytes: int | None = None) -> None:
        super().__init__(name)
        self.client = client
        self._keyspace = Keyspace.from_env(prefix)
        self.keys_of: RunKeys = self._keyspace.run(check_session_id(name))
        self.prefix = self.keys_of.prefix
        self._base = self.keys_of.channel_prefix
        self._index = self.keys_of.channel_index
        self.max_value_bytes = max_value_bytes or limits.max_value_bytes()
        self._push_script: Any = None  # registered on the first append
        self._answered_mark: str | None = None  # of the last adding write that replied

    def _write_mark(self) -> str:
        """The key that marks one adding write applied (its id: this call's own)."""
        return self.keys_of.channel_write(uuid.uuid4().hex)

    def _encoded(self, key: str, value: Any) -> bytes:
        encoded = encode_value(value)
        if len(encoded) > self.max_value_bytes:
            raise limits.too_large(f"channel {self.name} key {key!r}: the value", len(encoded),
                                   self.max_value_bytes, limits.MAX_VALUE_BYTES_ENV)
        return encoded

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError(
            "a RedisChannel holds a live connection and cannot be pickled; "
            "checkpoints save its values instead"
        )

    def _key(self, key: str) -> str:
        return self._base + key

    def _what(self, key: str) -> str:
        return f"channel {self.name} key {key!r}"

    def _decode_list(self, raw_items: list[bytes], key: str) -> list[Any]:
        return [decode_value(item, self._what(key)) for item in raw_items]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            raw = self.client.get(self._key(key))
        except ResponseError as exc:
            if not _wrong_type(exc):
                raise
            try:
                items = self.client.lrange(self._key(key), 0, -1)
            except ResponseError as again:
                if not _wrong_type(again):
                    raise
                raise WireError(f"{self._what(key)}: holds neither a value nor a list "
                                "(written by something else than graflow-dist)") from None
            return self._decode_list(items, key)
        return default if raw is None else decode_value(raw, self._what(key))

    def decoded(self, key: str, raw: bytes) -> Any:
        """The value of ``key`` from ``raw``, its plain value as read from Redis."""
        return decode_value(raw, self._what(key))

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        if not keys:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.get(self._key(key))
        found: dict[str, Any] = {}
        for key, raw in zip(keys, pipe.execute(raise_on_error=False), strict=True):
            if isinstance(raw, Exception):
                if not _wrong_type(raw):
                    raise raw
                found[key] = self.get(key)
            elif raw is not None:
                found[key] = decode_value(raw, self._what(key))
        return found

    def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.sadd(self._index, key)  # first: the index may name more, never fewer
        pipe.set(self._key(key), self._encoded(key, value), ex=ttl)
        pipe.execute()

    def delete(self, key: str) -> bool:
        pipe = self.client.pipeline(transaction=False)
        pipe.delete(self._key(key))
        pipe.srem(self._index, key)
        return bool(pipe.execute()[0])

    def exists(self, key: str) -> bool:
        return bool(self.client.exists(self._key(key)))

    def _raw_keys(self) -> list[bytes]:
        return channel_key_names(self.client, self.keys_of)

    def keys(self) -> list[str]:
        cut = len(self._base)
        return sorted(k.decode(errors="replace")[cut:] for k in self._raw_keys())

    def clear(self) -> None:
        clear_channel(self.client, self.keys_of)

    def _push(self, key: str, value: Any, ttl: int | None, front: bool) -> int:
        full = self._key(key)
        encoded = self._encoded(key, value)
        if self._push_script is None:
            self._push_script = self.client.register_script(
                source("channel_push", self._keyspace))
        mark = self._write_mark()  # the same for each try of this call
        answered = [self._answered_mark] if self._answered_mark else []
        while True:
            reply = self._push_script(keys=[full, self._index, mark, *answered], args=[
                key, encoded, int(front), "" if ttl is None else ttl, WRITE_MARK_TTL_S])
            if not isinstance(reply, list):
                self._answered_mark = mark  # the next adding write deletes it
                return int(reply)
            held = dict(zip(reply[1::2], reply[2::2], strict=True))  # key -> type it holds
            if held != {full.encode(): b"string"} or reply[0] != RefusedResult.WRONG_TYPE:
                found = ", ".join(f"{k.decode(errors='replace')} holds a "
                                  f"{t.decode(errors='replace')}" for k, t in held.items())
                raise WireError(f"{self._what(key)}: cannot append ({found}, written by "
                                "something else than graflow-dist)")
            self._convert_to_list(key)

    def _convert_to_list(self, key: str) -> None:
        """A list stored with ``set()`` becomes a Redis list so it can be appended to."""
        full = self._key(key)
        with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(full)
                    if pipe.type(full) != b"string":
                        return
                    current = decode_value(pipe.get(full), self._what(key))
                    if not isinstance(current, list):
                        raise TypeError(
                            f"channel key {key!r} holds {type(current).__name__}, not a list"
                        )
                    ttl = pipe.pttl(full)
                    pipe.multi()
                    pipe.delete(full)
                    if current:
                        pipe.rpush(full, *(encode_value(v) for v in current))
                    if ttl and ttl > 0:
                        pipe.pexpire(full, ttl)
                    pipe.execute()
                    return
                except WatchError:
                    continue

    def append(self, key: str, value: Any, ttl: int | None = None) -> int:
        return self._push(key, value, ttl, front=False)

    def prepend(self, key: str, value: Any, ttl: int | None = None) -> int:
        return self._push(key, value, ttl, front=True)

    def atomic_add(self, key: str, amount: int | float = 1) -> int | float:
        full = self._key(key)
        mark = self._write_mark()  # the same for each try of this call
        with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(full)
                    applied, raw = pipe.mget(mark, full)
                    if applied is not None:  # sent again after its reply was lost: it landed
                        self._answered_mark = mark
                        return check_number(key, decode_value(applied, self._what(key)))
                    current = 0 if raw is None else decode_value(raw, self._what(key))
                    total = check_number(key, current) + amount
                    encoded = encode_value(total)
                    pipe.multi()
                    pipe.sadd(self._index, key)
                    pipe.set(full, encoded, keepttl=True)
                    pipe.set(mark, encoded, ex=WRITE_MARK_TTL_S)
                    if self._answered_mark:
                        pipe.delete(self._answered_mark)
                    pipe.execute()
                    self._answered_mark = mark  # the next adding write deletes it
                    return total
                except WatchError:
                    continue

    @contextmanager
    def lock(self, key: str, timeout: float = DEFAULT_LOCK_TIMEOUT_S) -> Iterator[None]:
        lock = self.client.lock(self.keys_of.lock(key), timeout=max(timeout, 1.0) * 6,
                                blocking_timeout=timeout, lock_class=_RetriedLock)
        if not lock.acquire():
            raise TimeoutError(f"channel lock {key!r} not acquired within {timeout} s")
        try:
            yield
        finally:
            lock.release()

    def raw_values(self) -> dict[str, bytes]:
        """Every value still encoded (lists as one list value), for checkpoints."""
        return read_channel(self.client, self.keys_of)

    def describe(self) -> dict[str, Any]:
        return {"channel": "redis", "name": self.name, "prefix": self.prefix}
