"""The Redis check of the services' readiness endpoints (``/readyz``).

It pings Redis on a connection of its own: a probe must not queue behind (or retry
like) a service's long blocking commands.
"""

from __future__ import annotations

import time

import redis

from graflow_dist.broker.connection import TRANSIENT_ERRORS, single_attempt_client

DEFAULT_PROBE_TIMEOUT_S = 1.0
# Kubernetes probes every few seconds; answers this fresh are reused.
DEFAULT_PROBE_CACHE_S = 1.0


class RedisProbe:
    """``probe()`` is True when Redis answered a PING within ``timeout_s`` (checked at
    most once per ``cache_s``). Uses a connection of its own, without retries."""

    def __init__(self, client: redis.Redis, timeout_s: float = DEFAULT_PROBE_TIMEOUT_S,
                 cache_s: float = DEFAULT_PROBE_CACHE_S) -> None:
        self._client = single_attempt_client(client, socket_timeout=timeout_s,
                                             socket_connect_timeout=timeout_s)
        self._cache_s = cache_s
        self._checked_at = float("-inf")
        self._answer = False

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self._checked_at >= self._cache_s:
            try:
                self._answer = bool(self._client.ping())
            except (redis.RedisError, *TRANSIENT_ERRORS):
                self._answer = False
            self._checked_at = time.monotonic()
        return self._answer

