"""Shared fixtures: one private redis-server per test session, flushed per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import pytest
import redis

# Every process of the test session (and the workers it starts) signs with this key;
# nothing is written to the user's ~/.graflow-dist.
os.environ.setdefault("GRAFLOW_DIST_SECRET", "graflow-dist-test-secret-0123456789abcdef")

from clusters import WORKER_OPTIONS, coordinator_options  # noqa: E402

from graflow_dist.embedded import RedisServer  # noqa: E402
from graflow_dist.embedded.cluster import LocalCluster  # noqa: E402

SLOW_PACKAGES = ("reliability", "chaos")


CONTAINERS_OPTION = "--containers"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(CONTAINERS_OPTION, action="store_true",
                     help="also run the tests marked `containers` (they build the worker "
                          "image and run containers with podman; .ci/run gives this)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Fault-injection suites are slow by nature: mark them so `-m "not slow"` is the
    fast layer. Container tests take minutes and need podman: deselected (not skipped)
    unless asked for, so the plain `python -m pytest` stays fast."""
    for item in items:
        if Path(str(item.fspath)).parent.name in SLOW_PACKAGES:
            item.add_marker(pytest.mark.slow)
    if config.getoption(CONTAINERS_OPTION):
        return
    deselected = [item for item in items if item.get_closest_marker("containers")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("containers")]


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Test modules are not importable by worker processes: ship their code by value."""
    module = getattr(item, "module", None)
    if module is not None:
        cloudpickle.register_pickle_by_value(module)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server shared by the whole session (in a pytest tmp dir)."""
    server = RedisServer(dir=tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of a clean database: the session server is FLUSHALLed first."""
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    return redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client on the clean database, closed after the test."""
    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def cluster(redis_url: str, tmp_path: Path) -> Iterator[LocalCluster]:
    """A coordinator and two worker processes on the clean database; checkpoints
    without absolute paths go to ``tmp_path / "checkpoints"``."""
    with LocalCluster(
        2,
        redis_url=redis_url,
        data_dir=str(tmp_path / "cluster"),
        worker_options=WORKER_OPTIONS,
        coordinator_options=coordinator_options(tmp_path),
    ) as running:
        yield running
