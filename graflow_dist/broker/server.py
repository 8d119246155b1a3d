"""What the services check of the Redis server itself: whether it may drop our keys.

A Redis that evicts keys when it reaches ``maxmemory`` silently breaks runs (a queued
job, a lease, a frontier or a task's code gone); ``noeviction`` refuses writes instead,
an error that is seen. Managed Redis services often default to an evicting policy.
"""

from __future__ import annotations

import redis
from redis.exceptions import ResponseError

NO_EVICTION = "noeviction"


def eviction_risk(client: redis.Redis) -> str | None:
    """Why this Redis may drop keys when it is full, or None (it refuses writes instead,
    has no memory limit, or does not tell: INFO refused)."""
    try:
        memory = client.info("memory")
    except ResponseError:
        return None
    policy = str(memory.get("maxmemory_policy", NO_EVICTION))
    try:
        limit = int(memory.get("maxmemory", 0) or 0)
    except (TypeError, ValueError):
        return None
    if policy == NO_EVICTION or limit <= 0:
        return None
    return (f"Redis evicts keys when it holds maxmemory ({limit} bytes; maxmemory-policy "
            f"{policy}): runs can lose queued tasks, leases and their frontier. Set "
            f"maxmemory-policy {NO_EVICTION} (see docs/operations.md)")
