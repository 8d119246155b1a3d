"""Helpers of the web console tests: polling, an HTTP client that behaves like the
console's pages (CSRF cookie and header), and workflows gated by files so a test
decides when a task may finish."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from graflow_dist import TaskExecutionContext, task, workflow
from graflow_dist.embedded.cluster import LocalCluster, pid_in_name

DEFAULT_WAIT_S = 30.0


def poll(condition: Callable[[], Any], what: str, timeout_s: float = DEFAULT_WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


def wait_one_executor_each(cluster: LocalCluster) -> None:
    """Until each worker service of ``cluster`` (one executor each) is registered under
    one name. An earlier test's cancel may still be replacing an executor: for a moment
    its old name is registered next to the new one, or neither is."""
    cluster.wait_ready()

    def one_name_each() -> bool:
        pids = [pid_in_name(n) for n in cluster.broker.workers.names()]
        return sorted(pids) == sorted(w.pid for w in cluster.live_workers())

    poll(one_name_each, "each worker to be registered under one name")


class ConsoleHttp:
    """An HTTP client of the console that acts like its pages: it loads ``/`` once
    for the CSRF cookie and sends it back in the header of every POST."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30)
        self.http.get("/")

    @property
    def csrf(self) -> str:
        return self.http.cookies["gf_csrf"]

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        headers = {"x-csrf-token": self.csrf, **kwargs.pop("headers", {})}
        return self.http.post(path, json=body or {}, headers=headers, **kwargs)

    def close(self) -> None:
        self.http.close()


def gated_workflow(name: str, gates: Path, fail_until_flag: bool = False):  # noqa: ANN201
    """``start >> (left | right) >> finish``: each task waits until the file
    ``gates/<task>`` exists (so a test sees it running); with ``fail_until_flag``
    ``finish`` raises until ``gates/fixed`` exists. ``start`` asks for a checkpoint."""
    gates.mkdir(parents=True, exist_ok=True)

    def wait_gate(task_id: str) -> None:
        deadline = time.monotonic() + 60
        while not (gates / task_id).exists() and time.monotonic() < deadline:
            time.sleep(0.02)

    with workflow(name) as wf:

        @task(inject_context=True)
        def start(ctx: TaskExecutionContext) -> str:
            wait_gate("start")
            ctx.checkpoint(metadata={"stage": "started"})
            return "started"

        @task
        def left(start: str) -> str:
            wait_gate("left")
            return start + "+left"

        @task
        def right(start: str) -> str:
            wait_gate("right")
            return start + "+right"

        @task
        def finish(left: str, right: str) -> str:
            wait_gate("finish")
            if fail_until_flag and not (gates / "fixed").exists():
                raise RuntimeError("finish is not fixed yet")
            return f"{left}|{right}"

        start >> (left | right) >> finish
    return wf


def open_gates(gates: Path, *names: str) -> None:
    gates.mkdir(parents=True, exist_ok=True)
    for name in names:
        (gates / name).touch()


TASKS = ("start", "left", "right", "finish")
