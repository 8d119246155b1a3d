"""A leader that dies around a commit loses nothing that commit stood for: the
checkpoints its step asked for are written and noted (by it or by the next leader), and
a run it ended still gets its data's TTL. Also: writing checkpoints never costs the
lead.

The first coordinator runs in this process (so it can die exactly before or after that
commit); real worker processes run the tasks and a coordinator process takes over."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import structlog
from clusters import LEADER_LEASE_S, WORKER_OPTIONS

from graflow_dist import CheckpointManager, Client, TaskExecutionContext, task, workflow
from graflow_dist.broker import Broker, Commit
from graflow_dist.broker.keys import RunField
from graflow_dist.coordinator import checkpoints as checkpoints_module
from graflow_dist.coordinator.service import Coordinator
from graflow_dist.embedded.processes import ServiceProcess
from graflow_dist.embedded.redis_server import RedisServer
from reliability.harness import Ledger, record, wait_for, wait_run


class Died(Exception):
    """The in-process coordinator's end (nothing after it runs, as after a SIGKILL)."""


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    with RedisServer(appendonly=True, dir=tmp_path / "redis") as server:
        yield server.url


@pytest.fixture
def workers(redis_url: str, tmp_path: Path) -> Iterator[list[ServiceProcess]]:
    started = [ServiceProcess("worker", redis_url, WORKER_OPTIONS,
                              log_path=tmp_path / f"worker-{i}.log").start() for i in range(2)]
    broker = Broker(redis.Redis.from_url(redis_url))
    wait_for(lambda: len(broker.workers.names()) == len(started), "the workers")
    yield started
    for worker in started:
        worker.stop()


def checkpointing_workflow(ledger_dir: str, base: Path):  # noqa: ANN201
    with workflow("checkpoint-at-commit") as wf:

        @task(inject_context=True)
        def extract(ctx: TaskExecutionContext) -> int:
            record(ledger_dir, ctx, "start")
            ctx.checkpoint(path=str(base), metadata={"stage": "extract"})
            return 20

        @task(inject_context=True)
        def load(ctx: TaskExecutionContext, extract: int) -> int:
            record(ledger_dir, ctx, "start")
            return extract + 1

        extract >> load
    return wf


def completes(task_id: str) -> Callable[[Commit], bool]:
    """Whether a commit is that of the step in which ``task_id`` completed."""
    return lambda commit: any(
        cmd[:1] == ["HSET"] and RunField.LAST_TASK in cmd and task_id in cmd
        for cmd in commit.commands if isinstance(cmd, list))


def dying_coordinator(url: str, checkpoints: Path, when: str,
                      at: Callable[[Commit], bool]) -> tuple[Coordinator, threading.Thread]:
    """A leader that dies ``when`` ("before"/"after") applying the commit ``at`` picks."""
    coordinator = Coordinator(redis.Redis.from_url(url), checkpoint_dir=str(checkpoints),
                              leader_lease_s=LEADER_LEASE_S)
    apply = coordinator.broker.apply

    def apply_then_die(commit: Commit, *args: Any) -> int:
        step = at(commit)
        if step and when == "before":
            raise Died
        failed = apply(commit, *args)
        if step:
            raise Died
        return failed

    coordinator.broker.apply = apply_then_die  # type: ignore[method-assign]

    def serve() -> None:
        try:
            coordinator.run(threading.Event())
        except Died:
            pass

    thread = threading.Thread(target=serve, name=f"coordinator-dies-{when}", daemon=True)
    thread.start()
    return coordinator, thread


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_coordinator_dying_at_its_commit_loses_no_checkpoint(
    when: str, redis_url: str, workers: list[ServiceProcess], tmp_path: Path,
) -> None:
    checkpoints = tmp_path / "checkpoints"
    ledger = Ledger(tmp_path / "ledger")
    base = checkpoints / "etl"
    _first, thread = dying_coordinator(redis_url, checkpoints, when, completes("extract"))
    with Client(redis_url) as client:
        run = client.submit(checkpointing_workflow(ledger.path, base))
        thread.join(timeout=60)
        assert not thread.is_alive(), "the first coordinator did not reach the commit"
        successor = ServiceProcess("coordinator", redis_url, [
            "--checkpoint-dir", str(checkpoints), "--leader-lease-s", str(LEADER_LEASE_S)],
            log_path=tmp_path / "coordinator.log").start()
        try:
            assert wait_run(run) == 21
        finally:
            successor.stop()
        noted = run.info()["last_checkpoint"]
    assert noted == f"{base}.pkl" and run.info()["checkpoint_error"] is None
    ctx, meta = CheckpointManager.resume_from_checkpoint(noted)
    assert meta.user_metadata["stage"] == "extract"
    assert ctx.completed_tasks == ["extract"]
    assert [spec.task_id for spec in ctx.pending_tasks] == ["load"]
    assert ctx.get_result("extract") == 20
    # Died before its commit: the next leader applied the step again and wrote the
    # checkpoint again. Died after it: the checkpoint was written before the commit.
    rewritten = "checkpoint written" in (tmp_path / "coordinator.log").read_text()
    assert rewritten == (when == "before")
    # extract's completion was in the stream: the takeover applied it, never re-ran it
    assert [e.task for e in ledger.entries("start")] == ["extract", "load"]


def test_checkpoints_slower_than_the_leader_lease_do_not_cost_the_lead(
    redis_url: str, workers: list[ServiceProcess], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A step whose runs' checkpoints take longer to write than the leader lease (slow
    storage, many runs): the leader keeps its lease while it writes them, so the commit
    that follows is not refused (it was, after every reload again: no run ever ended)."""
    lease_s = 1.0
    write = checkpoints_module.checkpoint_run

    def slow_write(*args: Any, **kwargs: Any) -> Any:
        time.sleep(lease_s * 0.4)
        return write(*args, **kwargs)

    monkeypatch.setattr(checkpoints_module, "checkpoint_run", slow_write)
    coordinator = Coordinator(redis.Redis.from_url(redis_url),
                              checkpoint_dir=str(tmp_path / "checkpoints"),
                              leader_lease_s=lease_s)
    stop = threading.Event()
    thread = threading.Thread(target=coordinator.run, args=(stop,), daemon=True)
    with structlog.testing.capture_logs() as logs, Client(redis_url) as client:
        thread.start()
        wait_for(coordinator.ready.is_set, "the coordinator to lead")
        with workflow("checkpoint-each") as wf:

            @task(inject_context=True)
            def only(ctx: TaskExecutionContext) -> str:
                ctx.checkpoint(metadata={"stage": "only"})
                return "done"

        runs = [client.submit(wf) for _ in range(6)]
        try:
            assert [wait_run(run) for run in runs] == ["done"] * len(runs)
            assert all(run.info()["last_checkpoint"] for run in runs)
        finally:
            stop.set()
            thread.join(timeout=30)
    lost = [e for e in logs if e["event"] == "no longer leader"]
    assert not lost, lost


@pytest.mark.parametrize("damaged", [False, True], ids=["intact", "graph-damaged"])
def test_a_run_ended_by_a_leader_that_died_at_once_still_expires(
    redis_url: str, workers: list[ServiceProcess], tmp_path: Path, damaged: bool,
) -> None:
    """The leader dies right after the commit that ended a run, before giving its data a
    TTL: the next leader does it when it takes over (the data stayed forever). Also
    when the run's stored graph no longer reads: its own keys get their TTL."""
    with workflow("expires-anyway") as wf:

        @task
        def only() -> str:
            return "done"

    _first, thread = dying_coordinator(redis_url, tmp_path / "checkpoints", "after",
                                       completes("only"))
    r = redis.Redis.from_url(redis_url)
    keyspace = Broker(r).keyspace
    with Client(redis_url) as client:
        run = client.submit(wf)
        assert wait_run(run) == "done"  # the end is committed
        thread.join(timeout=30)
        meta = keyspace.run(run.session_id).meta
        assert r.ttl(meta) == -1, "expired before the leader died"
        assert r.zscore(keyspace.expiring_runs, run.session_id) is not None
        if damaged:
            r.hset(keyspace.run(run.session_id).shape, "only", b"\xc1 not msgpack")
        successor = ServiceProcess("coordinator", redis_url, [
            "--checkpoint-dir", str(tmp_path / "checkpoints"),
            "--leader-lease-s", str(LEADER_LEASE_S), "--run-ttl-s", "3600"],
            log_path=tmp_path / "coordinator.log").start()
        try:
            wait_for(lambda: r.ttl(meta) > 0, "the run's data to get its TTL")
        finally:
            successor.stop()
    assert 0 < r.ttl(meta) <= 3600
    assert r.ttl(keyspace.run(run.session_id).channel_index) > 0
    assert r.ttl(keyspace.run(run.session_id).shape) > 0
    assert r.zcard(keyspace.expiring_runs) == 0
