"""A run waiting for a person survives the loss of its leader (SIGKILL) and a Redis
restart (kill -9, AOF): the task stays parked, holds no worker, and completes with the
answer given afterwards, through the command line as an operator would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from clusters import LEADER_LEASE_S

from graflow_dist import Client, TaskExecutionContext, task, workflow
from graflow_dist.broker.connection import REDIS_URL_ENV
from reliability.harness import Ledger, record, wait_for, wait_run


def approval_workflow(ledger_dir: str):  # noqa: ANN201
    with workflow("approval-under-faults") as wf:

        @task(inject_context=True)
        def prepare(ctx: TaskExecutionContext) -> str:
            record(ledger_dir, ctx, "start")
            return "release-7"

        @task(inject_context=True)
        def approve(ctx: TaskExecutionContext, prepare: str) -> bool:
            record(ledger_dir, ctx, "start")
            return ctx.request_approval(f"ship {prepare}?", timeout=600)

        @task(inject_context=True)
        def deploy(ctx: TaskExecutionContext, approve: bool) -> str:
            record(ledger_dir, ctx, "start")
            return "deployed" if approve else "held"

        prepare >> approve >> deploy
    return wf


def waiting(client: Client, run: Any) -> str:
    request = wait_for(lambda: client.pending_feedback(run.session_id), "the request")[0]
    wait_for(lambda: run.status() == "waiting", "the run to wait")
    return request.feedback_id


def approve_from_the_cli(url: str, feedback_id: str) -> None:
    answered = subprocess.run(
        [sys.executable, "-m", "graflow_dist.cli.main", "feedback", "respond", feedback_id,
         "--approve", "--reason", "checked"],
        env={**os.environ, REDIS_URL_ENV: url}, capture_output=True, text=True, timeout=60)
    assert answered.returncode == 0, answered.stderr


def test_the_wait_survives_a_leader_sigkill(make_cluster, ledger: Ledger) -> None:
    cluster = make_cluster(workers=1, coordinators=2)
    client = Client(cluster.url)
    run = client.submit(approval_workflow(ledger.path))
    feedback_id = waiting(client, run)
    leader = cluster.leader()
    assert leader is not None
    leader.signal_group(signal.SIGKILL)
    leader.proc.wait(timeout=5)
    wait_for(lambda: (c := cluster.leader()) is not None and c is not leader,
             "the standby to take over", timeout_s=LEADER_LEASE_S + 10)
    assert run.status() == "waiting" and run.progress().running == 0
    approve_from_the_cli(cluster.url, feedback_id)
    assert wait_run(run) == "deployed"
    starts = [e.task for e in ledger.entries("start")]
    assert starts.count("prepare") == 1 and starts.count("deploy") == 1
    assert starts.count("approve") == 2  # asked (then parked), and again with the answer


def test_the_wait_survives_a_redis_restart(make_cluster, ledger: Ledger) -> None:
    cluster = make_cluster(workers=1)
    client = Client(cluster.url)
    run = client.submit(approval_workflow(ledger.path))
    feedback_id = waiting(client, run)
    time.sleep(1.2)  # past appendfsync everysec: the wait is on disk, as it would be
    cluster.redis.kill()
    cluster.redis.restart()
    wait_for(lambda: run.status() == "waiting", "the run to be waiting after the restart")
    approve_from_the_cli(cluster.url, feedback_id)
    assert wait_run(run) == "deployed"
    assert [e.task for e in ledger.entries("start")].count("prepare") == 1
