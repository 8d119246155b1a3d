"""RedisCheckpointStore: checkpoints in Redis, for pods without a shared disk.

A path is ``redis://[:password@]host:port/DB/BASE`` (or ``rediss://``). The three
files are fields of one hash written in a single transaction, so a checkpoint is either
entirely there or not at all. Paths handed back never contain the password; it is
taken from the path or, for the same host, from ``GRAFLOW_DIST_REDIS_URL``.
"""

from __future__ import annotations

import os
import time
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

import redis

from graflow_dist.broker.connection import REDIS_URL_ENV, TRANSIENT_ERRORS, connect, mask_url
from graflow_dist.broker.keys import Keyspace
from graflow_dist.checkpoint.format import META, PKL, STATE
from graflow_dist.checkpoint.stores import with_suffix
from graflow_dist.errors import CheckpointError, ConnectionConfigError

_CREDENTIAL_PARAMS = frozenset({"password", "username"})


def _parts(path: str) -> tuple[SplitResult, list[str]]:
    """The URL parts and the path segments of a Redis store path; a malformed URL
    (a port that is no number, ...) is a `CheckpointError`."""
    try:
        parts = urlsplit(path)
        parts.port  # noqa: B018 - raises ValueError for a port that is no number
    except ValueError as exc:
        raise CheckpointError(mask_url(path), f"malformed Redis URL ({exc})") from None
    if not parts.hostname and parts.scheme in ("redis", "rediss"):
        raise CheckpointError(mask_url(path), "a Redis store path needs a host: "
                                              "redis://host:port/0/NAME")
    return parts, [s for s in parts.path.split("/") if s]


def _public_query(query: str) -> str:
    """The URL query without credentials (``?password=`` works in redis-py URLs)."""
    kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True)
            if k.lower() not in _CREDENTIAL_PARAMS]
    return urlencode(kept)


def _split(path: str) -> tuple[str, str, str, str]:
    """``(server url with credentials and query, public server url, base name, public
    query)``; the query (``?ssl_ca_certs=...``) belongs to the server."""
    parts, segments = _parts(path)
    db = "0"
    if segments and segments[0].isdigit():
        db, segments = segments[0], segments[1:]
    if not segments:
        raise CheckpointError(mask_url(path), "a redis checkpoint path needs a name after "
                                              "the database: redis://host:port/0/NAME")
    netloc = parts.netloc
    if parts.password is None:
        env = os.environ.get(REDIS_URL_ENV)
        if env:
            try:
                env_parts = urlsplit(env)
                same = (env_parts.hostname, env_parts.port) == (parts.hostname, parts.port)
            except ValueError:
                same = False
            if same:
                netloc = env_parts.netloc
    server = urlunsplit((parts.scheme, netloc, f"/{db}", parts.query, ""))
    public = urlunsplit((parts.scheme, f"{parts.hostname}:{parts.port or 6379}", f"/{db}", "",
                         ""))
    return server, public, "/".join(segments), _public_query(parts.query)


def public_path(path: str) -> str:
    """A Redis store path as it may be stored and shown: no user or password (in the
    host part or the query), the query's other settings kept."""
    server, public, name, query = _split(path)
    return f"{public}/{name}" + (f"?{query}" if query else "")


def store_root(path: str) -> tuple[str, str]:
    """``(public server url, name prefix)`` of a Redis store directory such as
    ``redis://host:6379/0/checkpoints`` (the prefix may be empty)."""
    parts, segments = _parts(path)
    db = "0"
    if segments and segments[0].isdigit():
        db, segments = segments[0], segments[1:]
    public = urlunsplit((parts.scheme, f"{parts.hostname}:{parts.port or 6379}", f"/{db}", "",
                         ""))
    return public, "/".join(segments)


class RedisCheckpointStore:
    """Checkpoints as hashes ``{prefix}:checkpoint:{BASE}``, indexed by creation time."""

    def __init__(self, client: redis.Redis, public_url: str,
                 keyspace: Keyspace | None = None, public_query: str = "") -> None:
        self.client = client
        self.public_url = public_url.rstrip("/")
        self.public_query = public_query
        self.keyspace = keyspace or Keyspace.from_env()

    @classmethod
    def for_path(cls, path: str) -> RedisCheckpointStore:
        server, public, _base, query = (_split(path) if _has_name(path)
                                        else _split(_server_only(path)))
        try:
            return cls(connect(server), public, public_query=query)
        except ConnectionConfigError as exc:
            raise CheckpointError(mask_url(path), str(exc)) from None

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
            raise CheckpointError(mask_url(with_suffix(base, suffix)),
                                  f"cannot read ({exc})") from None
        if raw is None:
            raise CheckpointError(mask_url(with_suffix(base, suffix)),
                                  "not found in the Redis store")
        return raw

    def list_bases(self) -> list[str]:
        names = [n.decode(errors="replace")
                 for n in self.client.zrange(self.keyspace.checkpoint_index, 0, -1)]
        query = f"?{self.public_query}" if self.public_query else ""
        return [f"{self.public_url}/{n}{query}" for n in names]


def _has_name(path: str) -> bool:
    segments = _parts(path)[1]
    return len(segments) > 1 or (len(segments) == 1 and not segments[0].isdigit())


def _server_only(path: str) -> str:
    """For listing: ``redis://host:port/DB/x`` (a placeholder name) with its query."""
    parts, segments = _parts(path)
    db = segments[0] if segments and segments[0].isdigit() else "0"
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}/x", parts.query, ""))
