"""The whole system (coordinators, workers, client) under a Redis user with exactly the
documented ACL; a user missing a permission is refused at start with one clear line,
before anything is written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from clusters import WORKER_OPTIONS, coordinator_options

from graflow_dist import Client, TaskExecutionContext, parallel, task, workflow
from graflow_dist.broker.keys import Keyspace
from graflow_dist.broker.permissions import acl_rules
from graflow_dist.embedded import RedisServer
from graflow_dist.embedded.cluster import LocalCluster
from graflow_dist.errors import RunEndedError

RUN_TIMEOUT_S = 60


def _user_url(server: RedisServer, name: str, *extra: str) -> str:
    with redis.Redis.from_url(server.url) as client:
        client.execute_command("ACL", "SETUSER", name, "reset", "on", f">{name}-password",
                               *acl_rules(Keyspace.from_env().prefix), *extra)
    return f"redis://{name}:{name}-password@127.0.0.1:{server.port}/0"


def acl_workflow(tag: str) -> Any:
    with workflow(f"acl-{tag}") as wf:

        def member(i: int) -> Any:
            @task(f"square_{i}", inject_context=True)
            def square(ctx: TaskExecutionContext) -> int:
                ctx.get_channel().append("seen", i)
                with ctx.get_channel().lock("total"):
                    ctx.get_channel().atomic_add("total", i * i)
                return i * i

            return square

        @task(inject_context=True)
        def total(ctx: TaskExecutionContext) -> int:
            ctx.checkpoint(metadata={"stage": "total"})
            return sum(ctx.get_result(f"square_{i}") for i in range(6))

        parallel(*[member(i) for i in range(6)]) >> total
    return wf


def test_a_run_completes_under_the_documented_acl(tmp_path: Path) -> None:
    with RedisServer(password="admin-password-0123456789", dir=tmp_path / "redis") as server:
        url = _user_url(server, "graflow")
        with LocalCluster(2, coordinators=2, redis_url=url, data_dir=str(tmp_path / "svc"),
                          worker_options=WORKER_OPTIONS,
                          coordinator_options=coordinator_options(tmp_path)) as cluster, \
                Client(url) as client:
            run = client.submit(acl_workflow("ok"))
            assert run.wait(timeout=RUN_TIMEOUT_S) == 55
            assert sorted(run.channel().get("seen")) == list(range(6))
            assert run.channel().get("total") == 55
            # written before the commit that ended the run
            assert run.info()["last_checkpoint"] and run.info()["checkpoint_error"] is None
            assert client.runs(5)[0]["status"] == "completed"
            with pytest.raises(RunEndedError):  # after the end: refused, nothing changes
                run.cancel("after the end")
            assert all(s.alive() for s in [*cluster.coordinators, *cluster.workers])
            logs = "".join(p.read_text(errors="replace")
                           for p in (tmp_path / "svc").glob("*.log"))
            assert "NOPERM" not in logs and "permission" not in logs.lower()


@pytest.mark.parametrize(("service", "missing"), [("coordinator", "-xadd"),
                                                  ("coordinator", "-rename"),
                                                  ("worker", "-blpop")])
def test_a_service_whose_user_lacks_a_permission_refuses_to_start(
    tmp_path: Path, service: str, missing: str
) -> None:
    with RedisServer(password="admin-password-0123456789", dir=tmp_path / "redis") as server:
        url = _user_url(server, "limited", missing)
        with redis.Redis.from_url(server.url) as admin:
            before = admin.dbsize()
            proc = subprocess.run(
                [sys.executable, "-m", "graflow_dist.cli.main", service],
                env={**os.environ, "GRAFLOW_DIST_REDIS_URL": url},
                capture_output=True, text=True, timeout=60)
            assert proc.returncode == 1
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
            assert lines[0].startswith("error: the Redis user may not run")
            assert missing[1:].upper() in lines[0] and "docs/security.md" in lines[0]
            assert admin.dbsize() == before, "a refused service wrote to Redis"
