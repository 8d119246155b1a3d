"""RedisCheckpointStore: checkpoints in Redis, for pods without a shared disk.

A path is ``redis://[:password@]host:port/DB/BASE`` (or ``rediss://``). The three
files are fields of one hash written in a single transaction, so a checkpoint is either
entirely there or not at all. Paths handed back never contain the password; it is
taken from the path or, for the same host, from ``GRAFLOW_DIST_REDIS_URL``.
"""

from __future__ import annotations

import os
import time
from urllib.parse import urlsplit, urlunsplit

import redis

from graflow_dist.broker.connection import REDIS_URL_ENV, TRANSIENT_ERRORS, connect, mask_url
from graflow_dist.broker.keys import Keyspace
from graflow_dist.checkpoint.format import META, PKL, STATE
from graflow_dist.errors import CheckpointError


def _split(path: str) -> tuple[str, str, str]:
    """``(server url with credentials, public server url, base name)``."""
    parts = urlsplit(path)
    segments = [s for s in parts.path.split("/") if s]
    db = "0"
    if segments and segments[0].isdigit():
        db, segments = segments[0], segments[1:]
    if not segments:
        raise CheckpointError(path, "a redis checkpoint path needs a name after the database: "
                                    "redis://host:port/0/checkpoints/NAME")
    netloc = parts.netloc
    if parts.password is None:
        env = os.environ.get(REDIS_URL_ENV)
        if env:
            env_parts = urlsplit(env)
            if (env_parts.hostname, env_parts.port) == (parts.hostname, parts.port):
                netloc = env_parts.netloc
    server = urlunsplit((parts.scheme, netloc, f"/{db}", "", ""))
    public = urlunsplit((parts.scheme, f"{parts.hostname}:{parts.port or 6379}", f"/{db}", "",
                         ""))
    return server, public, "/".join(segments)


class RedisCheckpointStore:
    """Checkpoints as hashes ``{prefix}:checkpoint:{BASE}``, indexed by creation time."""

    def __init__(self, client: redis.Redis, public_url: str,
                 keyspace: Keyspace | None = None) -> None:
        self.client = client
        self.public_url = public_url.rstrip("/")
        self.keyspace = keyspace or Keyspace.from_env()

    @classmethod
    def for_path(cls, path: str) -> RedisCheckpointStore:
        server, public, _base = _split(path) if _has_name(path) else (*_server_only(path), "")
        return cls(connect(server), public)

    def _name(self, base: str) -> str:
        return _split(base)[2] if base.startswith(("redis://", "rediss://")) else base

    def write(self, base: str, files: dict[str, bytes]) -> None:
        name = self._name(base)
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(self.keyspace.checkpoint(name),
                      mapping={"pkl": files[PKL], "state": files[STATE], "meta": files[META]})
            pipe.zadd(self.keyspace.checkpoint_index, {name: time.time()})
            pipe.execute()
        except TRANSIENT_ERRORS as exc:
            raise CheckpointError(mask_url(base), f"cannot write to Redis ({exc})") from None

    def read(self, base: str, suffix: str) -> bytes:
        field = {PKL: "pkl", STATE: "state", META: "meta"}[suffix]
        try:
            raw = self.client.hget(self.keyspace.checkpoint(self._name(base)), field)
        except TRANSIENT_ERRORS as exc:
            raise CheckpointError(mask_url(base + suffix), f"cannot read ({exc})") from None
        if raw is None:
            raise CheckpointError(mask_url(base + suffix), "not found in the Redis store")
        return raw

    def list_bases(self) -> list[str]:
        names = [n.decode() for n in self.client.zrange(self.keyspace.checkpoint_index, 0, -1)]
        return [f"{self.public_url}/{n}" for n in names]


def _has_name(path: str) -> bool:
    segments = [s for s in urlsplit(path).path.split("/") if s]
    return len(segments) > 1 or (len(segments) == 1 and not segments[0].isdigit())


def _server_only(path: str) -> tuple[str, str]:
    """For listing: ``redis://host:port/DB`` without a base name."""
    parts = urlsplit(path)
    segments = [s for s in parts.path.split("/") if s]
    db = segments[0] if segments and segments[0].isdigit() else "0"
    fake = urlunsplit((parts.scheme, parts.netloc, f"/{db}/x", "", ""))
    server, public, _ = _split(fake)
    return server, public
