"""Redis dies (kill -9) mid-run: with AOF it comes back on the same port, the services
reconnect (one log line per outage, no traceback per retry) and the run completes with
every result. With Redis wiped, the run resumes from its last automatic checkpoint. A
Redis that is full (`noeviction`) refuses writes for a while: nothing is lost either."""

from __future__ import annotations

import shutil
import time
from collections import Counter
from pathlib import Path

import pytest
import redis

from graflow_dist import Client, chain, parallel, task, workflow
from graflow_dist.core.checkpoint import CheckpointManager
from reliability.harness import FaultCluster, Ledger, recorded_step, wait_for, wait_run

WIDTH = 24
CHAIN = 10


def busy_workflow(ledger_dir: str, seconds: float = 0.1):  # noqa: ANN201
    def step(name: str, value: int):  # noqa: ANN202
        return recorded_step(ledger_dir, name, seconds, value)

    with workflow("redis-restart") as wf:

        @task(inject_context=True)
        def total(ctx) -> int:  # noqa: ANN001
            return sum(ctx.get_result(f"f{i}") for i in range(WIDTH)) + sum(
                ctx.get_result(f"c{i}") for i in range(CHAIN))

        parallel(*[step(f"f{i}", i) for i in range(WIDTH)]) >> chain(
            *[step(f"c{i}", 1000 * i) for i in range(CHAIN)]) >> total
    return wf


EXPECTED = sum(range(WIDTH)) + sum(1000 * i for i in range(CHAIN))
ALL_TASKS = {*(f"f{i}" for i in range(WIDTH)), *(f"c{i}" for i in range(CHAIN)), "total"}


def assert_complete(run, expected: int = EXPECTED) -> None:  # noqa: ANN001
    assert wait_run(run, timeout_s=60) == expected
    for i in range(WIDTH):
        assert run.get_result(f"f{i}") == i
    for i in range(CHAIN):
        assert run.get_result(f"c{i}") == 1000 * i
    ctx = run.context()
    assert ALL_TASKS <= set(ctx.completed_tasks)
    assert ctx.frontier.pending_tasks == []


def outage_lines(cluster: FaultCluster) -> Counter[str]:
    """Per service log: how many 'redis unavailable' lines."""
    return Counter(path.name for path, rec in cluster.logs()
                   if rec.get("event", "").startswith("redis unavailable"))


@pytest.mark.parametrize("downtime_s", [0.2, 2.0], ids=["blip", "outage"])
def test_redis_kill_9_and_restart_with_aof_mid_run(make_cluster, ledger: Ledger,
                                                   downtime_s: float) -> None:
    cluster = make_cluster(workers=2)
    run = Client(cluster.url).submit(busy_workflow(ledger.path))
    wait_for(lambda: len(ledger.entries("end")) >= 6, "some tasks to complete")
    cluster.redis.kill()
    time.sleep(downtime_s)  # the length of the outage, not a synchronisation
    cluster.redis.restart()

    assert_complete(run)
    # Healthy workers keep their tasks: leases get a grace period after the outage and
    # reports finished during it are resent, so nothing ran twice.
    starts = Counter(e.task for e in ledger.entries("start"))
    assert max(starts.values()) == 1, {t: n for t, n in starts.items() if n > 1}
    text = cluster.log_text()
    assert "Traceback" not in text, text[-3000:]
    noticed = outage_lines(cluster)
    if downtime_s > 1.0:  # longer than the client-side retries: every service notices
        assert len(noticed) == 3, f"not every service logged the outage: {noticed}"
    assert all(n == 1 for n in noticed.values()), f"one line per outage expected: {noticed}"
    for path, rec in cluster.logs():
        if rec.get("event", "").startswith("redis unavailable"):
            assert any(r.get("event") == "redis reachable again" for p, r in cluster.logs()
                       if p == path), f"{path.name} never said Redis was back"


def test_a_full_redis_refusing_writes_for_longer_than_the_lease_loses_nothing(
        make_cluster, ledger: Ledger) -> None:
    """maxmemory reached under `noeviction`: every write fails with OOM for 4 s (twice
    the lease). Workers keep the reports of the tasks that finish meanwhile and send them
    after; leases get a grace period. (Workers dropped those reports: the tasks ran
    again, each counted as a crash, and the coordinator logged an error per step.)"""
    with workflow("redis-full") as wf:
        leaves = [recorded_step(ledger.path, f"leaf{i}", 0.2, i) for i in range(WIDTH)]

        @task(inject_context=True)
        def join(ctx) -> int:  # noqa: ANN001
            return sum(ctx.get_result(f"leaf{i}") for i in range(WIDTH))

        recorded_step(ledger.path, "head", 0.0, 0) >> parallel(*leaves) >> join

    cluster = make_cluster(workers=2)
    redis_client = cluster.client
    run = Client(cluster.url).submit(wf)
    wait_for(lambda: len(ledger.entries("end")) >= 3, "some tasks to complete")
    redis_client.config_set("maxmemory-policy", "noeviction")
    redis_client.config_set("maxmemory", int(redis_client.info("memory")["used_memory"]))
    filler = 0
    try:
        while True:  # up to the limit, whatever the services wrote meanwhile
            redis_client.set(f"filler:{filler}", b"x" * 10_000)
            filler += 1
    except redis.exceptions.OutOfMemoryError:
        pass
    time.sleep(4.0)  # the length of the refusal, not a synchronisation
    if filler:
        redis_client.delete(*(f"filler:{i}" for i in range(filler)))
    redis_client.config_set("maxmemory", 0)

    assert wait_run(run, timeout_s=60) == sum(range(WIDTH))
    starts = Counter(e.task for e in ledger.entries("start"))
    assert max(starts.values()) == 1, {t: n for t, n in starts.items() if n > 1}
    assert not redis_client.exists(cluster.keyspace.run(run.session_id).crashes)
    text = cluster.log_text()
    assert "Traceback" not in text
    assert "redis refused a command" not in text and "heartbeat failed" not in text


def test_redis_wiped_resumes_from_the_last_automatic_checkpoint(
        make_cluster, ledger: Ledger, tmp_path: Path) -> None:
    cluster = make_cluster(workers=2, coordinator_options=["--checkpoint-every-steps", "5"])
    client = Client(cluster.url)
    run = client.submit(busy_workflow(ledger.path))
    checkpoints = tmp_path / "checkpoints"
    wait_for(lambda: len(CheckpointManager.list_checkpoints(checkpoints, run.session_id)) >= 3,
             "a few automatic checkpoints")
    # Redis loses everything: killed, its data files gone, started empty. (The services
    # write all the time, so "empty" is checked on the run's data, not on the keyspace.)
    cluster.redis.kill()
    for path in [*_aof_files(cluster.redis.dir), *cluster.redis.dir.glob("*.rdb")]:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    cluster.redis.restart()
    assert not cluster.broker.runs.exists(run.session_id)

    latest = CheckpointManager.list_checkpoints(checkpoints, run.session_id)[-1]
    resumed = Client(cluster.url).resume(latest.path)
    assert resumed.session_id == run.session_id
    assert_complete(resumed)
    # Tasks the checkpoint had completed did not run again.
    state = CheckpointManager.resume_from_checkpoint(latest.path)[0]
    starts = Counter(e.task for e in ledger.entries("start"))
    assert all(starts[t] == 1 for t in state.completed_tasks if t in starts), starts


def _aof_files(directory: Path) -> list[Path]:
    """Redis 6 keeps ``appendonly.aof``; Redis 7 an ``appendonlydir/``."""
    return [p for p in (directory / "appendonly.aof", directory / "appendonlydir") if p.exists()]


def test_redis_losing_acknowledged_writes_is_detected_and_the_run_completes(
        make_cluster, ledger: Ledger, tmp_path: Path) -> None:
    """A Redis machine crash between fsyncs (or a failover to a lagging replica) loses
    writes the services saw acknowledged: Redis comes back *behind* the coordinator.
    Simulated by restarting Redis from an older copy of its append-only file."""
    cluster = make_cluster(workers=2)
    run = Client(cluster.url).submit(busy_workflow(ledger.path))
    wait_for(lambda: len(ledger.entries("end")) >= 8, "some tasks to complete")
    older = tmp_path / "older-aof"
    older.mkdir()
    for path in _aof_files(cluster.redis.dir):
        (shutil.copytree if path.is_dir() else shutil.copy2)(path, older / path.name)
    ahead = len(ledger.entries("end")) + 8
    wait_for(lambda: len(ledger.entries("end")) >= ahead, "the cluster to move on")
    cluster.redis.kill()
    for path in _aof_files(cluster.redis.dir):
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    for path in older.iterdir():
        (shutil.copytree if path.is_dir() else shutil.copy2)(path, cluster.redis.dir / path.name)
    cluster.redis.restart()  # quick: the client-side retries may hide the outage entirely

    assert_complete(run)
    assert any(rec.get("reason", "").startswith("redis lost committed writes")
               for _p, rec in cluster.logs("coordinator")), "the coordinator did not notice"
