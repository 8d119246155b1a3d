"""Fixtures of the reliability tests: a cluster of real processes per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from clusters import LEADER_LEASE_S, WORKER_OPTIONS
from clusters import coordinator_options as base_coordinator_options

from reliability.harness import FaultCluster, Ledger


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "ledger")


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Callable[..., FaultCluster]]:
    """``make_cluster(workers=2, coordinators=1, worker_options=..., coordinator_options=...)``
    starts a `FaultCluster` that is torn down after the test."""
    made: list[FaultCluster] = []

    def make(workers: int = 2, coordinators: int = 1, *,
             worker_options: list[str] | None = None,
             coordinator_options: list[str] | None = None) -> FaultCluster:
        cluster = FaultCluster(
            tmp_path / "cluster",
            worker_options=WORKER_OPTIONS if worker_options is None else worker_options,
            coordinator_options=[
                *base_coordinator_options(tmp_path, "--leader-lease-s", str(LEADER_LEASE_S)),
                *(coordinator_options or []),
            ],
        )
        made.append(cluster)
        return cluster.start(workers, coordinators)

    yield make
    for cluster in made:
        cluster.stop()
