"""Fixtures of the web console tests: a cluster with the console served by its own
``graflow-dist ui`` process, a client, and an HTTP client of the console (helpers in
console_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from clusters import WORKER_OPTIONS, coordinator_options
from console_helpers import ConsoleHttp

from graflow_dist import Client
from graflow_dist.embedded import RedisServer
from graflow_dist.embedded.cluster import LocalCluster

UI_POLL_S = "0.2"


@pytest.fixture(scope="module")
def console_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A coordinator, two workers and the web console on a Redis of their own; the
    coordinator and the console share ``<tmp>/checkpoints``."""
    root = tmp_path_factory.mktemp("console-cluster")
    with RedisServer(dir=root / "redis") as server, LocalCluster(
        2, redis_url=server.url, data_dir=str(root / "services"),
        worker_options=WORKER_OPTIONS, coordinator_options=coordinator_options(root),
        ui_port=0, ui_options=["--poll-s", UI_POLL_S, "--checkpoint-dir",
                               str(root / "checkpoints")],
    ) as running:
        yield running


@pytest.fixture
def client(console_cluster: LocalCluster) -> Iterator[Client]:
    with Client(console_cluster.url) as connected:
        yield connected


@pytest.fixture
def http(console_cluster: LocalCluster) -> Iterator[ConsoleHttp]:
    api = ConsoleHttp(console_cluster.ui_url)
    try:
        yield api
    finally:
        api.close()
