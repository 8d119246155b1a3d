"""What a cluster keeps does not grow with what it ever ran: a finished run's data
expires after ``--run-ttl-s`` and with it every trace of the run in the deployment's
indexes (`P:runs`, the feedback index), while a run still going stays listed however
old; workers and coordinators silent for a day are forgotten."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clusters import WORKER_OPTIONS, coordinator_options

from graflow_dist import Client, TaskExecutionContext, task, workflow
from graflow_dist.broker.keys import Keyspace
from graflow_dist.coordinator.service import FORGET_LOST_AFTER_S
from graflow_dist.embedded import RedisServer
from graflow_dist.embedded.cluster import LocalCluster

RUN_TTL_S = 1
RUN_TIMEOUT_S = 60
HOUSEKEEPING_WAIT_S = 15  # a coordinator's housekeeping runs every 10 s


def test_expired_runs_leave_no_index_entries_and_a_waiting_run_stays(
        tmp_path: Path, wait_until: Callable[..., Any]) -> None:
    with workflow("short-lived") as plain:

        @task
        def only() -> int:
            return 1

    with workflow("asks-first") as asking:

        @task(inject_context=True)
        def ask(ctx: TaskExecutionContext) -> bool:
            return ctx.request_feedback("approval", "go?", timeout=600).approved

    with RedisServer(dir=tmp_path / "redis") as server, LocalCluster(
        1, redis_url=server.url, data_dir=str(tmp_path / "services"),
        worker_options=WORKER_OPTIONS,
        coordinator_options=coordinator_options(tmp_path, "--run-ttl-s", str(RUN_TTL_S)),
    ) as cluster, Client(cluster.url) as client:
        r, keyspace = cluster.client, Keyspace.from_env()
        waiting = client.submit(asking)
        request = wait_until(lambda: client.pending_feedback(waiting.session_id),
                             "the request")[0]
        finished = [client.submit(plain) for _ in range(5)]
        assert [run.wait(timeout=RUN_TIMEOUT_S) for run in finished] == [1] * 5

        wait_until(lambda: r.zcard(keyspace.all_runs) == 1, "the expired runs off the index")
        assert client.runs() and [x["session_id"] for x in client.runs()] == [
            waiting.session_id]  # older than the TTL, but going: it stays
        assert r.zrange(keyspace.feedback_index, 0, -1) == [request.feedback_id.encode()]
        for run in finished:
            assert not r.exists(keyspace.run(run.session_id).meta)

        client.respond(request.feedback_id, approved=True)
        assert waiting.wait(timeout=RUN_TIMEOUT_S) is True
        wait_until(lambda: r.zcard(keyspace.all_runs) + r.zcard(keyspace.feedback_index) == 0,
                   "the last run and its request off the indexes")
        assert r.zcard(keyspace.expiring_runs) == 0
        assert not [k for k in r.keys(f"{keyspace.prefix}:run:*")]
        assert not [k for k in r.keys(f"{keyspace.prefix}:feedback:req:*")]


def test_workers_and_coordinators_silent_for_a_day_are_forgotten(
        shared_cluster: LocalCluster, wait_until: Callable[..., Any]) -> None:
    """Killed workers never unregister: the list (and the console) would keep every
    worker that ever ran. A day of silence, and they go; live ones stay."""
    r, keyspace = shared_cluster.client, Keyspace.from_env()
    live = set(shared_cluster.broker.workers.names())
    day_ago = time.time() - FORGET_LOST_AFTER_S - 60
    r.zadd(keyspace.workers, {"gf-killed-pod": day_ago, "gf-lost-yesterday": time.time() - 3600})
    r.hset(keyspace.worker_stats, "gf-killed-pod", b"x")
    r.zadd(keyspace.coordinators, {"coord-killed": day_ago})
    rq_sets = ("rq:workers", f"rq:workers:{keyspace.queue_name}")
    for key in rq_sets:  # its RQ registration, whose worker hash expired long ago
        r.sadd(key, "rq:worker:gf-killed-pod")
    wait_until(lambda: "gf-killed-pod" not in shared_cluster.broker.workers.names(),
               "the silent worker forgotten", timeout_s=HOUSEKEEPING_WAIT_S)
    assert set(shared_cluster.broker.workers.names()) == live | {"gf-lost-yesterday"}
    assert not r.hexists(keyspace.worker_stats, "gf-killed-pod")
    for key in rq_sets:
        members = r.smembers(key)
        assert b"rq:worker:gf-killed-pod" not in members and members, key
    assert "coord-killed" not in shared_cluster.broker.leader.coordinators()
    assert shared_cluster.broker.leader.coordinators()  # the live one stays
