"""The heartbeat's view of the job it renews: a job reaped from under its worker is
lost; one its worker released while the heartbeat was on its way is not (found at
200,000 tasks: false "lease lost" warnings and lease_lost counts)."""

from __future__ import annotations

import redis
import structlog

from graflow_dist.broker.keys import Keyspace
from graflow_dist.scheduler.specs import TaskSpec
from graflow_dist.wire.messages import Batch
from graflow_dist.worker.service import CurrentJob, Worker


def _worker(client: redis.Redis) -> Worker:
    worker = Worker(client, keyspace=Keyspace("gfbeat"), lease_s=5.0, heartbeat_s=1.0)
    worker.registration.register(worker.stats())
    return worker


def _job(tokens: list[str]) -> CurrentJob:
    batch = Batch("s" * 32, "g" * 64, [TaskSpec("a", "e.1")], "", 10)
    return CurrentJob("gf.job-without-a-lease", batch, tokens)


def test_a_job_released_meanwhile_is_not_lost(redis_client: redis.Redis) -> None:
    worker = _worker(redis_client)
    worker.current = _job([])  # its last report released it: nothing unfinished
    with structlog.testing.capture_logs() as logs:
        worker._beat()
    assert not worker.current.lost
    assert not [e for e in logs if "lease lost" in e["event"]]


def test_a_job_whose_lease_is_gone_with_tasks_left_is_lost(redis_client: redis.Redis
                                                           ) -> None:
    worker = _worker(redis_client)
    worker.current = _job(["e.1"])  # reaped while a task was left to run
    with structlog.testing.capture_logs() as logs:
        worker._beat()
    assert worker.current.lost
    assert [e for e in logs if "lease lost" in e["event"]]
