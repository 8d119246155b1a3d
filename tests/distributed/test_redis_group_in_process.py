"""Graflow's Redis mode: a workflow runs in this process and a group with
``backend="redis"`` runs its members on a cluster's workers; results, channel writes,
failures and the group's policy come back to the in-process run."""

from __future__ import annotations

import os
import pickle

import cloudpickle
import pytest
import redis

from graflow_dist import TaskExecutionContext, task, workflow
from graflow_dist.coordination import CoordinationBackend
from graflow_dist.core.task import BestEffortGroupPolicy
from graflow_dist.embedded.cluster import LocalCluster
from graflow_dist.errors import ParallelGroupError


def fan_out(config: dict, policy: object = "strict", fail: bool = False):  # noqa: ANN201
    with workflow("redis-mode") as wf:

        @task(inject_context=True)
        def head(ctx: TaskExecutionContext) -> int:
            ctx.get_channel().set("base", 10)
            return os.getpid()

        def member(i: int):  # noqa: ANN202
            @task(f"m{i}", inject_context=True)
            def run(ctx: TaskExecutionContext) -> dict:
                if fail and i == 1:
                    raise ValueError("member 1 broke")
                ctx.get_channel().set(f"seen_{i}", ctx.get_channel().get("base") + i)
                # the worker service whose executor process runs it
                return {"i": i, "pid": os.getppid()}

            return run

        @task(inject_context=True)
        def join(ctx: TaskExecutionContext) -> list:
            return sorted(k for k in ctx.get_channel().keys() if k.startswith("seen_"))

        group = member(0) | member(1) | member(2)
        group.with_execution(backend=CoordinationBackend.REDIS, backend_config=config,
                             policy=policy)
        head >> group >> join
    return wf


def test_members_run_on_the_cluster_and_come_back(cluster: LocalCluster) -> None:
    client = redis.Redis.from_url(cluster.url)
    result, ctx = fan_out({"redis_client": client}).execute(ret_context=True)
    assert result == ["seen_0", "seen_1", "seen_2"]  # channel writes came back
    assert ctx.get_result("head") == os.getpid()  # head ran here
    worker_pids = {w.pid for w in cluster.workers}
    for i in range(3):
        member = ctx.get_result(f"m{i}")
        assert member["i"] == i and member["pid"] in worker_pids  # members ran there
        assert ctx.channel.get(f"seen_{i}") == 10 + i  # they saw head's channel write
    group = ctx.graph.get_node("ParallelGroup_1")
    restored = pickle.loads(cloudpickle.dumps(group))
    assert restored.redis_client is None  # the live connection stays here


def test_a_member_failure_meets_the_group_policy(cluster: LocalCluster) -> None:
    with pytest.raises(ParallelGroupError, match="member 1 broke"):
        fan_out({"redis_url": cluster.url}, fail=True).execute()
    result = fan_out({"redis_url": cluster.url}, policy=BestEffortGroupPolicy(),
                     fail=True).execute()
    assert result == ["seen_0", "seen_2"]
