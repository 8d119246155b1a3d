"""A worker's claim runs in Redis but its reply is lost (a loopback proxy the test owns
cuts the connection in between): the jobs it took are handed back at once, not left
leased until their lease runs out and then counted as crashes of tasks never started."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from graflow_dist import Client, TaskExecutionContext, parallel, task, workflow
from graflow_dist.broker import Broker
from graflow_dist.embedded.processes import ServiceProcess
from graflow_dist.embedded.redis_server import RedisServer
from reliability.harness import wait_for
from reliability.loopback_proxy import LoopbackProxy

pytestmark = pytest.mark.slow

# Long enough that a job left to its lease would show: the run must end well before.
LEASE_S = 30.0
MEMBERS = 20
RUNS = 3
# The report script's mode that releases a finished job and claims the next ones.
RELEASE_AND_CLAIM = b"$5\r\nclaim\r\n"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(appendonly=True, dir=tmp_path / "redis") as running:
        yield running


def test_jobs_of_a_claim_whose_reply_was_lost_are_handed_back_at_once(
        server: RedisServer, tmp_path: Path) -> None:
    r = redis.Redis.from_url(server.url)
    broker = Broker(r)
    with LoopbackProxy(server.port) as proxy:
        # One worker, behind the proxy: the run's group is split into several jobs,
        # which it claims one after the other with the release of the last.
        worker = ServiceProcess("worker", proxy.url(), [
            "--lease-s", str(LEASE_S), "--heartbeat-s", "1"],
            log_path=tmp_path / "worker.log").start()
        coordinator = ServiceProcess("coordinator", server.url, [
            "--checkpoint-dir", str(tmp_path / "checkpoints")],
            log_path=tmp_path / "coordinator.log").start()
        try:
            wait_for(lambda: len(broker.workers.names()) == 1, "the worker")
            wait_for(lambda: broker.leader.holder() is not None, "the coordinator")
            with workflow("lost-claim-reply") as wf:
                members = []
                for i in range(MEMBERS):
                    @task(f"member_{i}")
                    def member() -> int:
                        time.sleep(0.01)  # the next runs' jobs queue up meanwhile
                        return 1

                    members.append(member)

                @task(inject_context=True)
                def join(ctx: TaskExecutionContext) -> int:
                    return sum(ctx.get_result(f"member_{i}") for i in range(MEMBERS))

                parallel(*members) >> join

            # The worker's first job ends with a claim of the next: that claim runs,
            # its reply is lost, and the worker sends it again.
            proxy.lose_reply_to(RELEASE_AND_CLAIM)
            started = time.monotonic()
            with Client(server.url) as client:
                runs = [client.submit(wf) for _ in range(RUNS)]
                assert [run.wait(timeout=LEASE_S / 2) for run in runs] == [MEMBERS] * RUNS
            assert time.monotonic() - started < LEASE_S / 2
            assert proxy.lost.is_set(), "no claim reply was lost: the test saw nothing"
            for run in runs:
                crashes = broker.keyspace.run(run.session_id).crashes
                assert r.hlen(crashes) == 0, "tasks never started were counted as crashes"
            assert worker.alive()
        finally:
            worker.stop()
            coordinator.stop()
