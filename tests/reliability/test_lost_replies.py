"""A command runs in Redis but its reply is lost: a loopback proxy the test owns cuts
the connection in between, as a network cut or a Redis restart does. Sent again, it
must not do its work twice: a worker's claim must not strand the jobs it took, a
client's submission must not start the run over, a channel's append or atomic_add must
not add twice."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from graflow_dist import Client, TaskExecutionContext, parallel, task, workflow
from graflow_dist.broker import Broker
from graflow_dist.broker.connection import connect, patient_client
from graflow_dist.broker.scripts import source
from graflow_dist.channels.redis import RedisChannel
from graflow_dist.embedded.processes import ServiceProcess
from graflow_dist.embedded.redis_server import RedisServer
from reliability.harness import wait_for
from reliability.loopback_proxy import LoopbackProxy

pytestmark = pytest.mark.slow

# Long enough that a job left to its lease would show: the runs must end well before.
LEASE_S = 30.0
MEMBERS = 20
RUNS = 3
# The report script's mode that releases a finished job and claims the next ones.
RELEASE_AND_CLAIM = b"$5\r\nclaim\r\n"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(appendonly=True, dir=tmp_path / "redis") as running:
        yield running


@pytest.fixture
def proxy(server: RedisServer) -> Iterator[LoopbackProxy]:
    with LoopbackProxy(server.port) as running:
        yield running


@contextmanager
def services(server: RedisServer, tmp_path: Path, *, worker_url: str | None = None,
             coordinator_url: str | None = None, worker_options: tuple[str, ...] = ()
             ) -> Iterator[Broker]:
    """A worker and a coordinator, each on Redis directly or through the proxy."""
    broker = Broker(redis.Redis.from_url(server.url))
    worker = ServiceProcess("worker", worker_url or server.url, list(worker_options),
                            log_path=tmp_path / "worker.log").start()
    coordinator = ServiceProcess("coordinator", coordinator_url or server.url, [
        "--checkpoint-dir", str(tmp_path / "checkpoints")],
        log_path=tmp_path / "coordinator.log").start()
    try:
        wait_for(lambda: len(broker.workers.names()) == 1, "the worker")
        wait_for(lambda: broker.leader.holder() is not None, "the coordinator")
        yield broker
        assert worker.alive() and coordinator.alive()
    finally:
        worker.stop()
        coordinator.stop()


def note(ledger: Path, line: str) -> None:
    with ledger.open("a") as fh:
        fh.write(line + "\n")


def script_sha(name: str, broker: Broker) -> bytes:
    return hashlib.sha1(source(name, broker.keyspace).encode()).hexdigest().encode()


def test_jobs_of_a_claim_whose_reply_was_lost_are_handed_back_at_once(
        server: RedisServer, proxy: LoopbackProxy, tmp_path: Path) -> None:
    # One worker, behind the proxy: each run's group is split into several jobs, which
    # it claims one after the other with the release of the last.
    with services(server, tmp_path, worker_url=proxy.url(),
                  worker_options=("--lease-s", str(LEASE_S), "--heartbeat-s", "1")) as broker:
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

        # The worker's first job ends with a claim of the next: that claim runs, its
        # reply is lost, and the worker sends it again.
        proxy.lose_reply_to(RELEASE_AND_CLAIM)
        started = time.monotonic()
        with Client(server.url) as client:
            runs = [client.submit(wf) for _ in range(RUNS)]
            assert [run.wait(timeout=LEASE_S / 2) for run in runs] == [MEMBERS] * RUNS
        assert time.monotonic() - started < LEASE_S / 2
        assert proxy.lost.is_set(), "no claim reply was lost: the test saw nothing"
        for run in runs:
            crashes = broker.keyspace.run(run.session_id).crashes
            assert broker.client.hlen(crashes) == 0, \
                "tasks never started were counted as crashes"


def test_a_submission_whose_reply_was_lost_does_not_start_the_run_over(
        server: RedisServer, proxy: LoopbackProxy, tmp_path: Path) -> None:
    """The client's Redis client sends the submission again: the run, which may have
    ended meanwhile, must not be written anew (its tasks would run again)."""
    ledger = tmp_path / "ran.txt"
    with services(server, tmp_path) as broker:
        with workflow("lost-submit-reply") as wf:

            @task
            def only() -> str:
                note(ledger, "ran")
                return "done"

        with Client(proxy.url()) as client:
            assert client.submit(wf).wait(timeout=30) == "done"  # the script is loaded
            ledger.unlink()
            proxy.lose_reply_to(script_sha("submit_run", broker))
            run = client.submit(wf)
            assert run.wait(timeout=30) == "done"
        assert proxy.lost.is_set(), "no submission reply was lost: the test saw nothing"
        time.sleep(1.0)  # a run started over would have run its task again by now
        assert ledger.read_text() == "ran\n"
        assert run.status() == "completed"


def test_a_commit_whose_reply_was_lost_is_not_taken_for_lost_writes(
        server: RedisServer, proxy: LoopbackProxy, tmp_path: Path) -> None:
    """The coordinator's Redis client sends its commit again: refused (it landed), the
    coordinator reloads, says why, and no task runs twice."""
    ledger = tmp_path / "ran.txt"
    with services(server, tmp_path, coordinator_url=proxy.url()) as broker:
        with workflow("lost-commit-reply") as wf:

            @task
            def first() -> int:
                note(ledger, "first")
                return 1

            @task
            def second(first: int) -> int:
                note(ledger, "second")
                return first + 1

            first >> second

        with Client(server.url) as client:
            assert client.submit(wf).wait(timeout=30) == 2  # the script is loaded
            ledger.unlink()
            proxy.lose_reply_to(script_sha("fenced_apply", broker))
            assert client.submit(wf).wait(timeout=30) == 2
        assert proxy.lost.is_set(), "no commit reply was lost: the test saw nothing"
        time.sleep(0.5)
        assert ledger.read_text() == "first\nsecond\n"
    log = (tmp_path / "coordinator.log").read_text()
    assert "had landed already" in log
    assert "redis lost committed writes" not in log


def test_channel_writes_that_add_are_applied_once_when_their_reply_is_lost(
        proxy: LoopbackProxy) -> None:
    """Task code's client retries through a Redis restart: an append or atomic_add sent
    again after its reply was lost adds nothing more (it appended twice, added twice)."""
    channel = RedisChannel("lost-replies", patient_client(connect(proxy.url())))
    assert channel.atomic_add("n", 1) == 1
    channel.append("log", "a")
    proxy.lose_reply_to(b"MULTI")  # atomic_add's transaction
    assert channel.atomic_add("n", 1) == 2
    assert proxy.lost.is_set()
    proxy.lose_reply_to(channel._key("log").encode())  # the append's script call
    assert channel.append("log", "b") == 2
    assert proxy.lost.is_set()
    assert channel.get("n") == 2
    assert channel.get("log") == ["a", "b"]


def test_a_channel_lock_whose_reply_was_lost_is_held(proxy: LoopbackProxy) -> None:
    """The lock's SET took it, its reply was lost, and the SET sent again was refused:
    the lock is ours (it timed out waiting for itself, and stayed taken)."""
    channel = RedisChannel("lost-replies", patient_client(connect(proxy.url())))
    proxy.lose_reply_to(channel.keys_of.lock("res").encode())
    with channel.lock("res", timeout=1):
        assert proxy.lost.is_set()
    with channel.lock("res", timeout=1):  # released: free again
        pass
