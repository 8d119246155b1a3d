"""Embedded infrastructure: a private redis-server for tests and single-host runs."""

from graflow_dist.embedded.redis_server import (
    DEFAULT_START_TIMEOUT_S,
    DEFAULT_STOP_TIMEOUT_S,
    RedisServer,
    RedisServerError,
    find_redis_server,
    free_port,
)

__all__ = [
    "DEFAULT_START_TIMEOUT_S",
    "DEFAULT_STOP_TIMEOUT_S",
    "RedisServer",
    "RedisServerError",
    "find_redis_server",
    "free_port",
]
