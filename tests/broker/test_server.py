"""eviction_risk against a real redis-server: only a memory limit with an evicting
policy is a risk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from graflow_dist.broker.server import eviction_risk
from graflow_dist.embedded.redis_server import RedisServer


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[redis.Redis]:
    """A server of this test's own: it changes the server's settings."""
    with RedisServer(dir=tmp_path / "redis") as server:
        yield redis.Redis.from_url(server.url)


def test_only_an_evicting_policy_with_a_memory_limit_is_a_risk(own_redis: redis.Redis) -> None:
    assert eviction_risk(own_redis) is None  # no maxmemory: nothing is evicted
    own_redis.config_set("maxmemory-policy", "allkeys-lru")
    assert eviction_risk(own_redis) is None
    own_redis.config_set("maxmemory", "100mb")
    risk = eviction_risk(own_redis)
    assert risk is not None
    assert "allkeys-lru" in risk and "104857600 bytes" in risk and "noeviction" in risk
    own_redis.config_set("maxmemory-policy", "noeviction")
    assert eviction_risk(own_redis) is None
