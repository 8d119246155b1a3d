"""Services warn when their Redis may evict keys (a managed Redis's default policy):
workers at start, the leading coordinator when it takes over and when it changes."""

from __future__ import annotations

import time
from pathlib import Path

import redis
from reliability.harness import wait_for

from graflow_dist.broker import Broker
from graflow_dist.embedded import RedisServer
from graflow_dist.embedded.processes import ServiceProcess

WARNING = '"event": "redis may drop keys"'


def test_services_warn_of_a_redis_that_evicts_keys(tmp_path: Path) -> None:
    with RedisServer(dir=tmp_path / "redis") as server:
        r = redis.Redis.from_url(server.url)
        r.config_set("maxmemory", "100mb")
        r.config_set("maxmemory-policy", "allkeys-lru")
        worker = ServiceProcess("worker", server.url, [], log_path=tmp_path / "worker.log")
        # Housekeeping (where the leader looks again) every second with this TTL.
        coordinator = ServiceProcess("coordinator", server.url, [
            "--run-ttl-s", "1", "--checkpoint-dir", str(tmp_path / "checkpoints")],
            log_path=tmp_path / "coordinator.log")
        worker.start()
        coordinator.start()
        try:
            broker = Broker(r)
            wait_for(lambda: broker.leader.holder() is not None, "the coordinator")
            wait_for(lambda: broker.workers.names(), "the worker")
            log = tmp_path / "coordinator.log"
            wait_for(lambda: WARNING in log.read_text(), "the coordinator's warning")
            assert "allkeys-lru" in log.read_text()
            r.config_set("maxmemory-policy", "noeviction")
            time.sleep(2.5)  # housekeeping sees it fixed, says nothing
            r.config_set("maxmemory-policy", "volatile-lru")
            wait_for(lambda: "volatile-lru" in log.read_text(), "the warning again")
            assert log.read_text().count(WARNING) == 2
        finally:
            worker.stop()
            coordinator.stop()
        assert (tmp_path / "worker.log").read_text().count(WARNING) == 1
