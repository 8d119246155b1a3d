"""Graflow 0.2.0 in its Redis (distributed) mode, as its source sets it up: 2
``python -m graflow.worker.main`` processes (default 4 threads each, 0.1 s polling) and
the workflow run by ``WorkflowEngine`` in the submitting process with a Redis channel;
the parallel group goes through ``with_execution(backend=CoordinationBackend.REDIS)``.

Graflow's Redis mode dispatches only parallel groups to workers: the head, the join
and every step of a chain run in the submitting process, and a run blocks its client
until it ends, so small runs are submitted one after another. A group waits at most
30 s (its barrier timeout), which bounds the size of a fan-out.

Runs in the peers' virtualenv; the workers unpickle the graph, whose no-op task
function is this module's (by reference).
"""

from __future__ import annotations

import sys
import time
from typing import Any
from urllib.parse import urlparse

import redis
from graflow import chain, parallel, task, workflow
from graflow.coordination.coordinator import CoordinationBackend
from graflow.core.context import ExecutionContext
from graflow.core.engine import WorkflowEngine

from peers.base import SMALL_RUN_WIDTH, Adapter, Measurement, measured, serve, versions

PREFIX = "bench-graflow"


def noop() -> None:
    return None


class GraflowAdapter(Adapter):
    name = "graflow"

    def start(self) -> None:
        url = urlparse(self.redis_url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 6379
        self.r = redis.Redis(host=self.host, port=self.port, decode_responses=True)
        for i in range(self.workers):
            self.services.spawn("workers", [
                sys.executable, "-m", "graflow.worker.main", "--worker-id", f"bench-{i}",
                "--redis-host", self.host, "--redis-port", str(self.port),
                "--redis-key-prefix", PREFIX, "--log-level", "WARNING"], f"graflow-{i}.log")
        self.workflows: dict[tuple[str, int], Any] = {}
        self._execute(self._fan_workflow(2), 2)  # the workers answer

    def stop(self) -> None:
        super().stop()
        if hasattr(self, "r"):
            self.r.close()

    def versions(self) -> dict[str, str]:
        return versions("graflow", "redis")

    def _fan_workflow(self, n: int) -> Any:
        key = ("fan", n)
        if key not in self.workflows:
            with workflow(f"bench-fan-{n}") as wf:
                head = task("head")(noop)
                leaves = [task(f"leaf_{i}")(noop) for i in range(n)]
                joined = task("join")(lambda: n)
                fan_out = parallel(*leaves).with_execution(
                    backend=CoordinationBackend.REDIS,
                    backend_config={"host": self.host, "port": self.port,
                                    "key_prefix": PREFIX})
                head >> fan_out >> joined
            self.workflows[key] = wf
        return self.workflows[key]

    def _chain_workflow(self, m: int) -> Any:
        key = ("chain", m)
        if key not in self.workflows:
            with workflow(f"bench-chain-{m}") as wf:
                steps = [task(f"step_{i}")(noop) for i in range(m - 1)]
                chain(*steps, task(f"step_{m - 1}")(lambda: m))
            self.workflows[key] = wf
        return self.workflows[key]

    def _execute(self, wf: Any, expected: int) -> None:
        ctx = ExecutionContext.create(wf.graph, channel_backend="redis",
                                      config={"redis_client": self.r, "key_prefix": PREFIX})
        result = WorkflowEngine().execute(ctx)
        if result != expected:
            raise RuntimeError(f"graflow run returned {result!r}, expected {expected}")

    def _time(self, tasks: int, wf: Any, expected: int, repeat: int = 1,
              **extra: Any) -> Measurement:
        t0 = time.perf_counter()
        for _ in range(repeat):
            self._execute(wf, expected)
        return measured(time.perf_counter() - t0, tasks * repeat, **extra)

    def run_fanout(self, n: int) -> Measurement:
        return self._time(n + 2, self._fan_workflow(n), n)

    run_scale = run_fanout

    def run_chain(self, m: int) -> Measurement:
        return self._time(m, self._chain_workflow(m), m, in_submitting_process=True)

    def run_small(self, runs: int) -> Measurement:
        return self._time(SMALL_RUN_WIDTH + 2, self._fan_workflow(SMALL_RUN_WIDTH),
                          SMALL_RUN_WIDTH, runs, runs=runs)


if __name__ == "__main__":
    sys.exit(serve(GraflowAdapter))
