"""The console's JSON API, server-sent events and pages on a real cluster, served by a
real ``graflow-dist ui`` process."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from console_helpers import (
    TASKS,
    ConsoleHttp,
    gated_workflow,
    open_gates,
    poll,
    wait_one_executor_each,
)

from graflow_dist import Client, TaskExecutionContext, task, workflow
from graflow_dist.embedded.cluster import LocalCluster, pid_in_name
from graflow_dist.errors import CheckpointWarning

RUN_TIMEOUT_S = 60


def sse_updates(base_url: str, path: str) -> Iterator[dict[str, Any]]:
    """The ``update`` events of a live view, decoded, as they arrive."""
    with httpx.Client(base_url=base_url, timeout=30) as http, \
            http.stream("GET", path) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event == "update":
                yield json.loads(line.removeprefix("data: "))


def finished_run(client: Client, name: str, gates: Path) -> str:
    open_gates(gates, *TASKS)
    run = client.submit(gated_workflow(name, gates))
    run.wait(timeout=RUN_TIMEOUT_S)
    return run.session_id


def test_runs_are_listed_newest_first_filtered_and_paged(
        client: Client, http: ConsoleHttp, tmp_path: Path) -> None:
    first = finished_run(client, "api-alpha", tmp_path / "a")
    second = finished_run(client, "api-beta", tmp_path / "b")

    runs = http.get("/api/runs").json()["runs"]
    ids = [r["session_id"] for r in runs]
    assert ids.index(second) < ids.index(first)
    listed = next(r for r in runs if r["session_id"] == second)
    assert listed["status"] == "completed" and listed["workflow"] == "api-beta"
    assert listed["progress"] == {"total": 4, "done": 4, "running": 0, "pending": 0,
                                  "failed": 0}

    by_name = http.get("/api/runs", params={"workflow": "api-alpha"}).json()["runs"]
    assert [r["session_id"] for r in by_name] == [first]
    by_prefix = http.get("/api/runs", params={"session": second[:8]}).json()["runs"]
    assert [r["session_id"] for r in by_prefix] == [second]
    by_status = http.get("/api/runs", params={"status": "completed"}).json()["runs"]
    assert {first, second} <= {r["session_id"] for r in by_status}
    assert http.get("/api/runs", params={"status": "cancelled",
                                         "workflow": "api-beta"}).json()["runs"] == []

    page = http.get("/api/runs", params={"workflow": "api-alpha", "limit": 1}).json()
    assert not page["has_more"]
    both = http.get("/api/runs", params={"limit": 1}).json()
    assert both["has_more"] and len(both["runs"]) == 1
    older = http.get("/api/runs", params={"limit": 1, "offset": 1}).json()
    assert older["runs"][0]["session_id"] != both["runs"][0]["session_id"]

    bad = http.get("/api/runs", params={"status": "nope"})
    assert bad.status_code == 400 and "unknown status 'nope'" in bad.json()["error"]
    assert http.get("/api/runs", params={"limit": "x"}).status_code == 400
    assert http.get("/api/runs", params={"limit": 0}).status_code == 400

    html = http.get("/", params={"workflow": "api-alpha"}).text
    assert first in html and second not in html

    update = next(sse_updates(str(http.http.base_url), "/api/runs/stream?workflow=api-beta"))
    assert [r["session_id"] for r in update["runs"]] == [second]


def test_a_run_in_detail_and_live(client: Client, http: ConsoleHttp,
                                  console_cluster: LocalCluster, tmp_path: Path) -> None:
    gates = tmp_path / "gates"
    run = client.submit(gated_workflow("api-live", gates))
    sid = run.session_id
    updates = sse_updates(console_cluster.ui_url, f"/api/runs/{sid}/stream")
    seen = next(u for u in updates if u["states"]["start"] == "running")
    assert seen["run"]["status"] == "running"
    assert seen["tasks"]["start"]["running_on"]
    assert seen["states"]["left"] == "pending"

    open_gates(gates, "start")
    seen = next(u for u in updates if u["states"]["start"] == "done")
    assert seen["tasks"]["start"]["preview"] == "'started'"
    open_gates(gates, "left", "right", "finish")
    seen = next(u for u in updates if u["run"]["status"] == "completed")
    assert set(seen["states"].values()) == {"done"}
    updates.close()

    detail = http.get(f"/api/runs/{sid}").json()
    assert set(detail["graph"]["nodes"]) == {*TASKS, *detail["graph"]["groups"]}
    assert ["start", next(iter(detail["graph"]["groups"]))] in detail["graph"]["edges"]
    assert "finish.__result__" in detail["channel_keys"]
    task = detail["tasks"]["finish"]
    assert task["attempts"] == 1 and task["worker"] and task["duration_s"] > 0
    assert task["queue_wait_s"] is not None and task["preview"] == \
        "'started+left|started+right'"

    svg = http.get(f"/api/runs/{sid}/graph.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    for task_id in TASKS:
        assert f">{task_id}</text>" in svg.text
    assert "gf-state-done" in svg.text
    page = http.get(f"/runs/{sid}").text
    for task_id in TASKS:
        assert f">{task_id}</text>" in page

    missing = http.get("/api/runs/no-such-run")
    assert missing.status_code == 404 and "unknown session" in missing.json()["error"]
    assert http.get("/runs/no-such-run").status_code == 404


def test_a_refused_checkpoint_shows_on_the_run_page(client: Client, http: ConsoleHttp
                                                   ) -> None:
    with workflow("api-refused-checkpoint") as wf:

        @task(inject_context=True)
        def save(ctx: TaskExecutionContext) -> str:
            ctx.checkpoint(path="../../elsewhere/save")
            return "saved"

    run = client.submit(wf)
    with pytest.warns(CheckpointWarning, match="refused: outside the coordinator's"):
        assert run.wait(timeout=RUN_TIMEOUT_S) == "saved"
    detail = http.get(f"/api/runs/{run.session_id}").json()
    assert "refused" in detail["run"]["checkpoint_error"]
    box = re.search(r'<div id="checkpoint-error"[^>]*>([^<]*)</div>',
                    http.get(f"/runs/{run.session_id}").text)
    assert box and "hidden" not in box.group(0), "the refusal is not shown"
    assert box.group(1).startswith("checkpoint failed: checkpoint ../../elsewhere/save: "
                                   "refused")


def test_cancel_one_run_and_bulk_cancel(client: Client, http: ConsoleHttp,
                                        tmp_path: Path) -> None:
    runs = [client.submit(gated_workflow(f"api-cancel-{i}", tmp_path / f"g{i}"))
            for i in range(3)]
    sids = [r.session_id for r in runs]
    one = http.post(f"/api/runs/{sids[0]}/cancel", {"reason": "test says stop"})
    assert one.status_code == 200 and one.json()["cancel_requested"]
    poll(lambda: runs[0].status() == "cancelled", "the first run to be cancelled")
    assert "test says stop" in runs[0].info()["error"]
    again = http.post(f"/api/runs/{sids[0]}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["error"]

    bulk = http.post("/api/runs/cancel", {"sessions": [sids[1], sids[2], "no-such-run"]})
    assert bulk.status_code == 200
    assert bulk.json()["cancelled"] == sids[1:]
    assert "unknown session" in bulk.json()["skipped"]["no-such-run"]
    poll(lambda: all(r.status() == "cancelled" for r in runs), "every run cancelled")
    for i in range(3):  # cancelling does not stop a running task: free the workers
        open_gates(tmp_path / f"g{i}", *TASKS)
    assert http.post("/api/runs/cancel", {"sessions": "x"}).status_code == 400
    assert http.post("/api/runs/cancel", {}).status_code == 400


def test_retry_a_failed_task_and_resume_from_a_checkpoint(
        client: Client, http: ConsoleHttp, tmp_path: Path) -> None:
    gates = tmp_path / "gates"
    run = client.submit(gated_workflow("api-retry", gates, fail_until_flag=True))
    sid = run.session_id
    open_gates(gates, *TASKS)
    poll(lambda: run.status() == "failed", "the run to fail in finish")
    detail = http.get(f"/api/runs/{sid}").json()
    assert detail["states"]["finish"] == "failed"
    assert detail["tasks"]["finish"]["retryable"]
    assert "RuntimeError: finish is not fixed yet" in detail["tasks"]["finish"]["traceback"]

    refused = http.post(f"/api/runs/{sid}/retry", {"task_id": "left"})
    assert refused.status_code == 409 and "'left'" in refused.json()["error"]
    assert http.post(f"/api/runs/{sid}/retry", {"task_id": "ghost"}).status_code == 404
    assert http.post(f"/api/runs/{sid}/retry", {}).status_code == 400

    open_gates(gates, "fixed")
    retried = http.post(f"/api/runs/{sid}/retry", {"task_id": "finish"})
    assert retried.status_code == 200, retried.text
    assert run.wait(timeout=RUN_TIMEOUT_S) == "started+left|started+right"

    checkpoints = http.get(f"/api/runs/{sid}/checkpoints").json()["checkpoints"]
    assert len(checkpoints) == 1
    (checkpoint,) = checkpoints
    assert checkpoint["steps"] == 1 and checkpoint["user_metadata"]["stage"] == "started"
    wrong = http.post(f"/api/runs/{sid}/resume", {"checkpoint": "/etc/passwd"})
    assert wrong.status_code == 400 and "not a checkpoint of run" in wrong.json()["error"]

    resumed = http.post(f"/api/runs/{sid}/resume", {"checkpoint": checkpoint["path"]})
    assert resumed.status_code == 200, resumed.text
    assert run.wait(timeout=RUN_TIMEOUT_S) == "started+left|started+right"
    assert run.record().resume


def parent_of(pid: int) -> int:
    """The parent pid of a live process (Linux /proc)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


def test_workers_queues_and_coordinators(http: ConsoleHttp,
                                         console_cluster: LocalCluster) -> None:
    wait_one_executor_each(console_cluster)
    data = http.get("/api/workers").json()
    assert len(data["workers"]) == 2
    assert data["redis_warning"] is None
    assert all(w["live"] and w["queue"] == "graflow" for w in data["workers"])
    # Each worker service runs its tasks in an executor process: the console shows the
    # executor (named after its service's pid) with its own pid.
    services = {w.pid for w in console_cluster.workers}
    assert {pid_in_name(w["name"]) for w in data["workers"]} == services
    assert {parent_of(w["pid"]) for w in data["workers"]} == services
    assert [q["name"] for q in data["queues"]] == ["graflow"]
    coordinators = data["coordinators"]
    assert coordinators["leader"] and coordinators["epoch"] >= 1
    assert [c["id"] for c in coordinators["coordinators"] if c["leader"]] == \
        [coordinators["leader"]]
    html = http.get("/workers").text
    for worker in data["workers"]:
        assert worker["name"] in html
    update = next(sse_updates(console_cluster.ui_url, "/api/workers/stream"))
    assert len(update["workers"]) == 2


def test_the_workers_page_warns_of_a_redis_that_evicts_keys(
        http: ConsoleHttp, console_cluster: LocalCluster) -> None:
    redis_client = console_cluster.client
    redis_client.config_set("maxmemory", "1gb")
    redis_client.config_set("maxmemory-policy", "allkeys-lru")
    try:
        warning = http.get("/api/workers").json()["redis_warning"]
        assert "allkeys-lru" in warning and "noeviction" in warning
        html = http.get("/workers").text
        assert 'id="redis-warning"' in html and "allkeys-lru" in html
    finally:
        redis_client.config_set("maxmemory-policy", "noeviction")
        redis_client.config_set("maxmemory", "0")
    assert http.get("/api/workers").json()["redis_warning"] is None
