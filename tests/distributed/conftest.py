"""Fixtures of the distributed integration tests.

Tasks are defined in the test modules themselves (they are shipped to the workers by
value); this file holds only what runs in the test process: a cluster shared by the
tests of a module, and polling helpers (events are awaited, never slept for).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from clusters import WORKER_OPTIONS, coordinator_options

from graflow_dist import Client
from graflow_dist.broker.keys import Keyspace
from graflow_dist.embedded import RedisServer
from graflow_dist.embedded.cluster import LocalCluster

DEFAULT_WAIT_S = 30.0
POLL_S = 0.01


def poll(condition: Callable[[], Any], what: str, timeout_s: float = DEFAULT_WAIT_S) -> Any:
    """Call ``condition`` until it returns something truthy, and return that; fail the
    test with ``what`` if ``timeout_s`` passes first."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(POLL_S)


@pytest.fixture
def wait_until() -> Callable[..., Any]:
    """``wait_until(condition, what, timeout_s=30)``: see `poll`."""
    return poll


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A coordinator and two workers on a redis-server of their own, shared by the tests
    of one module. Runs are isolated by session id; tests that kill or replace services
    use the function-scoped ``cluster`` fixture instead. Relative checkpoint paths go to
    ``<tmp>/checkpoints``."""
    root = tmp_path_factory.mktemp("shared-cluster")
    with RedisServer(dir=root / "redis") as server, LocalCluster(
        2,
        redis_url=server.url,
        data_dir=str(root / "services"),
        worker_options=WORKER_OPTIONS,
        coordinator_options=coordinator_options(root),
    ) as running:
        yield running


@pytest.fixture
def client(shared_cluster: LocalCluster) -> Iterator[Client]:
    """A client of the shared cluster."""
    with Client(shared_cluster.url) as connected:
        yield connected


@pytest.fixture
def keyspace() -> Keyspace:
    return Keyspace.from_env()


def worker_logs(cluster: LocalCluster) -> str:
    """Everything the cluster's workers logged so far."""
    return "".join(
        Path(w.log_path).read_text(errors="replace")
        for w in cluster.workers
        if w.log_path is not None and Path(w.log_path).exists()
    )


@pytest.fixture
def read_worker_logs() -> Callable[[LocalCluster], str]:
    return worker_logs


@pytest.fixture
def raw_redis(shared_cluster: LocalCluster) -> Iterator[redis.Redis]:
    """A plain client on the shared cluster's Redis."""
    connection = redis.Redis.from_url(shared_cluster.url)
    try:
        yield connection
    finally:
        connection.close()
