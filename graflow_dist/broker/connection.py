"""Redis connections: URL handling, clear errors, reconnects with backoff."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    AuthenticationError,
    InvalidResponse,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from graflow_dist.errors import ConnectionConfigError, RedisRefusedWritesError

P = ParamSpec("P")
R = TypeVar("R")
REDIS_URL_ENV = "GRAFLOW_DIST_REDIS_URL"
DEFAULT_SOCKET_TIMEOUT_S = 10.0
DEFAULT_CONNECT_TIMEOUT_S = 3.0
SCHEMES = ("redis", "rediss", "unix")

# Retries of `patient_client`: backoff doubles from 0.1 s up to 1 s, so ~35 s in all.
DEFAULT_PATIENT_RETRIES = 40

TRANSIENT_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionRefusedError, OSError)


# Replies of a Redis that takes no writes for now (full under `noeviction`, a snapshot it
# cannot write, a replica, a script running too long). The refused command did not run
# (a script is refused at its first write): services wait, as for an outage.
# (redis-py strips the OOM and READONLY codes of a command's reply; a script's error
# keeps them in its text.)
_WRITES_REFUSED = ("command not allowed when used memory", "MISCONF ", "READONLY ",
                   "NOREPLICAS ", "BUSY Redis is busy")


def writes_refused(exc: BaseException) -> bool:
    """Whether ``exc`` is Redis refusing writes for now (see `_WRITES_REFUSED`)."""
    return isinstance(exc, OutOfMemoryError | ReadOnlyError) or (
        isinstance(exc, ResponseError) and any(m in str(exc) for m in _WRITES_REFUSED))


def refused_writes_error(exc: BaseException) -> RedisRefusedWritesError:
    """What a user is told of a `writes_refused` reply (without the command, whose
    arguments may be large or binary)."""
    text = str(exc)
    if isinstance(exc, OutOfMemoryError) or "command not allowed when used memory" in text:
        why = ("it is full (maxmemory reached under maxmemory-policy noeviction). Free "
               "memory (finished runs' data expires after the coordinators' --run-ttl-s) "
               "or raise maxmemory")
    elif isinstance(exc, ReadOnlyError) or "READONLY " in text:
        why = "the URL points at a read-only replica. Use the primary's address"
    elif "MISCONF " in text:
        why = "it cannot write its snapshot to disk (MISCONF; see the Redis log)"
    elif "NOREPLICAS " in text:
        why = "too few replicas acknowledge writes (NOREPLICAS, min-replicas-to-write)"
    else:
        why = "it is busy running a script (BUSY)"
    return RedisRefusedWritesError(f"Redis refuses writes: {why}; then try again")


def explains_refused_writes(method: Callable[P, R]) -> Callable[P, R]:
    """``method`` raising `RedisRefusedWritesError` where Redis refused its writes
    (instead of redis-py's reply, which may quote a whole binary command)."""
    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except ResponseError as exc:
            if writes_refused(exc):
                raise refused_writes_error(exc) from None
            raise

    return wrapper


def is_wrong_type(exc: BaseException) -> bool:
    """A WRONGTYPE reply (inside a transaction redis-py prefixes it: "Command # 1 ...")."""
    return isinstance(exc, ResponseError) and "WRONGTYPE" in str(exc)


def resolve_url(url: str | None) -> str:
    resolved = url or os.environ.get(REDIS_URL_ENV)
    if not resolved:
        raise ConnectionConfigError(
            f"no Redis URL: pass --redis-url or set {REDIS_URL_ENV} "
            "(e.g. redis://127.0.0.1:6379/0)"
        )
    return resolved


def _host_port(netloc: str) -> str:
    """The ``host[:port]`` part of a netloc, as written (even a port that is no number)."""
    return netloc.rpartition("@")[2]


def mask_url(url: str) -> str:
    """``url`` with its password replaced, safe for logs and errors."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparseable url>"
    if password is None:
        return url
    netloc = f"{parts.username or ''}:***@{_host_port(parts.netloc)}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def strip_credentials(url: str) -> str:
    """``url`` without user and password (for paths that get stored or shown)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if "@" not in parts.netloc:
        return url
    return urlunsplit((parts.scheme, _host_port(parts.netloc), parts.path, parts.query,
                       parts.fragment))


def connect(url: str | None = None, *, retries: int = 3) -> redis.Redis:
    """A client for ``url`` (default ``GRAFLOW_DIST_REDIS_URL``); not yet connected.

    Commands retry transient connection errors with exponential backoff.
    """
    resolved = resolve_url(url)
    try:
        resolved.encode("utf-8")
        parts = urlsplit(resolved)
        scheme = parts.scheme
        parts.port  # noqa: B018 - raises ValueError for a port that is no number
    except ValueError as exc:  # UnicodeEncodeError too
        raise ConnectionConfigError(f"malformed Redis URL {mask_url(resolved)}: {exc}"
                                    ) from None
    if scheme not in SCHEMES:
        raise ConnectionConfigError(
            f"malformed Redis URL {mask_url(resolved)}: scheme must be one of "
            f"{', '.join(s + '://' for s in SCHEMES)}"
        )
    try:
        return redis.Redis.from_url(
            resolved,
            socket_timeout=DEFAULT_SOCKET_TIMEOUT_S,
            socket_connect_timeout=DEFAULT_CONNECT_TIMEOUT_S,
            health_check_interval=30,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
        )
    except (ValueError, TypeError) as exc:
        raise ConnectionConfigError(f"malformed Redis URL {mask_url(resolved)}: {exc}") from None


def _client_like(client: redis.Redis, retry: Retry, **settings: Any) -> redis.Redis:
    """A client on ``client``'s server, with a pool of its own whose commands retry as
    ``retry`` says (``settings``: other connection settings to change, e.g. timeouts)."""
    kwargs = client.connection_pool.connection_kwargs
    if "host" not in kwargs and "path" not in kwargs:
        return client  # not a pool we can copy (e.g. a test double)
    return redis.Redis(connection_pool=redis.ConnectionPool(
        connection_class=client.connection_pool.connection_class,
        **{**kwargs, **settings, "retry": retry},
    ))


def patient_client(client: redis.Redis, retries: int = DEFAULT_PATIENT_RETRIES) -> redis.Redis:
    """A client on the same server whose commands retry connection errors for longer
    (about 35 s with the default): for task code, which cannot do anything useful during
    a Redis restart but wait, rather than fail the task."""
    return _client_like(client, Retry(ExponentialBackoff(cap=1.0, base=0.05), retries))


def single_attempt_client(client: redis.Redis, **settings: Any) -> redis.Redis:
    """A client on the same server that sends each command once: a connection error
    reaches the caller instead of being retried, for commands that must not run twice
    unnoticed (a job claim whose reply was lost would hold jobs nobody runs), and for
    probes."""
    return _client_like(client, Retry(ExponentialBackoff(), 0), **settings)


def check_connection(client: redis.Redis, url: str | None = None) -> None:
    """Ping once, turning failures into a `ConnectionConfigError` that says why."""
    shown = mask_url(resolve_url(url)) if url or os.environ.get(REDIS_URL_ENV) else "Redis"
    probe = single_attempt_client(client)
    try:
        probe.ping()
    except AuthenticationError:
        raise ConnectionConfigError(
            f"Redis at {shown} refused the credentials (check the password in the URL)"
        ) from None
    except ResponseError as exc:
        if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
            raise ConnectionConfigError(
                f"Redis at {shown} requires a password (put it in the URL: "
                "redis://:PASSWORD@host:port/0)"
            ) from None
        raise ConnectionConfigError(f"Redis at {shown} answered with an error: {exc}") from None
    except InvalidResponse as exc:
        raise ConnectionConfigError(
            f"{shown} did not answer as a Redis server does ({exc}): check the host and "
            "port in the URL") from None
    except TRANSIENT_ERRORS as exc:
        error = ConnectionConfigError(f"cannot reach Redis at {shown}: {exc}")
        error.unreachable = True
        raise error from None
    finally:
        if probe is not client:
            probe.close()


def wait_for_connection(client: redis.Redis, url: str | None, timeout_s: float,
                        on_wait: Callable[[ConnectionConfigError], None] | None = None) -> None:
    """`check_connection`, retried with backoff for up to ``timeout_s`` while Redis is
    unreachable (a service starting before Redis); refused credentials fail at once."""
    deadline = time.monotonic() + timeout_s
    delay = 0.1
    while True:
        try:
            check_connection(client, url)
            return
        except ConnectionConfigError as exc:
            if not exc.unreachable or time.monotonic() + delay > deadline:
                raise
            if on_wait is not None and delay == 0.1:
                on_wait(exc)
        time.sleep(delay)
        delay = min(delay * 2, 2.0)
