"""graflow-dist: a ``LocalCluster`` (1 coordinator + 2 worker processes, default
options) on the benchmark's Redis; workflows handed over with ``Client.submit(wf)``,
the clock running from the first ``submit()`` until the last ``.wait()`` returns.
Also reports the server-side time (the run's ``submitted_at`` .. ``finished_at``) and
the in-process ``WorkflowEngine`` on the same fan-out and chain, for reference.

Runs in the repository's virtualenv.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from typing import Any

# Sign graph blobs with a throw-away key instead of creating ~/.graflow-dist/secret;
# set before graflow_dist is imported, inherited by the cluster's processes.
os.environ.setdefault("GRAFLOW_DIST_SECRET", "bench-" + secrets.token_hex(16))

import benchlib  # noqa: E402
import cloudpickle  # noqa: E402
from benchlib import (  # noqa: E402
    CountingRedis,
    chain_workflow,
    children_of,
    fanout_workflow,
)

from graflow_dist import Client  # noqa: E402
from graflow_dist.embedded.cluster import LocalCluster  # noqa: E402
from graflow_dist.errors import RunTimeoutError  # noqa: E402
from peers.base import (  # noqa: E402
    DEFAULT_RESULT_TIMEOUT_S,
    SMALL_RUN_WIDTH,
    Adapter,
    Measurement,
    measured,
    serve,
    versions,
)

# Workers and the coordinator unpickle the graph: ship benchlib's task code by value.
cloudpickle.register_pickle_by_value(benchlib)

WAIT_SLICE_S = 2.0  # > a default-size run, so the slicing never touches the timing


class GraflowDistAdapter(Adapter):
    name = "graflow-dist"

    def start(self) -> None:
        self.cluster = LocalCluster(
            self.workers, redis_url=self.redis_url, data_dir=str(self.logs / "cluster"),
            coordinator_options=["--checkpoint-dir", str(self.logs / "checkpoints")])
        self.cluster.start()
        self.r = CountingRedis.from_url(self.redis_url)
        self.client = Client(redis_client=self.r)
        self.workflows: dict[tuple[str, int], Any] = {}

    def stop(self) -> None:
        if hasattr(self, "cluster"):
            try:
                self.cluster.stop()
            finally:
                self.r.close()

    def pids(self) -> dict[str, list[int]]:
        assert self.cluster.coordinator is not None
        # A worker is a supervisor and its executor process (which runs the tasks).
        return {"coordinator": [self.cluster.coordinator.pid],
                "workers": [c for w in self.cluster.workers for c in children_of(w.pid)],
                "worker supervisors": [w.pid for w in self.cluster.workers]}

    def versions(self) -> dict[str, str]:
        return versions("graflow-dist", "rq", "redis", "cloudpickle", "msgpack")

    def _workflow(self, kind: str, size: int) -> Any:
        if (kind, size) not in self.workflows:
            build = fanout_workflow if kind == "fan" else chain_workflow
            self.workflows[(kind, size)] = build(size)
        return self.workflows[(kind, size)]

    def _wait(self, run: Any) -> Any:
        """``run.wait()`` in slices, failing fast if a service of the cluster died."""
        deadline = time.monotonic() + DEFAULT_RESULT_TIMEOUT_S
        while True:
            try:
                return run.wait(timeout=WAIT_SLICE_S)
            except RunTimeoutError:
                dead = [s for s in [self.cluster.coordinator, *self.cluster.workers]
                        if s is not None and not s.alive()]
                if dead:
                    raise RuntimeError(f"graflow-dist {dead[0].kind} (pid {dead[0].pid}) "
                                       f"exited during run {run.session_id}") from None
                if time.monotonic() > deadline:
                    raise

    def _runs(self, wf: Any, expected: int, count: int, tasks_per_run: int,
              max_steps: int | None = None) -> Measurement:
        self.r.counts.clear()
        t0 = time.perf_counter()
        runs = [self.client.submit(wf, max_steps=max_steps) for _ in range(count)]
        submitted = time.perf_counter() - t0
        with self.r.counted():
            results = [self._wait(run) for run in runs]
        seconds = time.perf_counter() - t0
        own = dict(self.r.counts)
        wrong = [r for r in results if r != expected]
        if wrong:
            raise RuntimeError(f"graflow-dist runs returned {wrong[0]!r}, expected {expected}")
        first, last = runs[0].info(), runs[-1].info()
        return measured(seconds, tasks_per_run * count, own_commands=own,
                        submit_seconds=submitted,
                        server_seconds=float(last["finished_at"]) - float(first["submitted_at"]),
                        start_seconds=float(first["started_at"]) - float(first["submitted_at"]))

    def run_fanout(self, n: int) -> Measurement:
        reply = self._runs(self._workflow("fan", n), n, 1, n + 2)
        wf = self._workflow("fan", n)
        t0 = time.perf_counter()
        if wf.execute() != n:
            raise RuntimeError("engine fan-out returned the wrong result")
        return {**reply, "engine_seconds": time.perf_counter() - t0}

    def run_scale(self, n: int) -> Measurement:
        # The client's own memory per task: its peak less what it held with the
        # workflow built (the workflow itself is the user's).
        before = _rss_mb()
        wf = fanout_workflow(n)
        built = _rss_mb()
        reply = self._runs(wf, n, 1, n + 2, max_steps=n + 10)
        return {**reply, "client_rss_mb": {"before_workflow": before, "workflow_built": built}}

    def run_chain(self, m: int) -> Measurement:
        reply = self._runs(self._workflow("chain", m), m, 1, m)
        t0 = time.perf_counter()
        if self._workflow("chain", m).execute() != m:
            raise RuntimeError("engine chain returned the wrong result")
        return {**reply, "engine_seconds": time.perf_counter() - t0}

    def run_small(self, runs: int) -> Measurement:
        reply = self._runs(self._workflow("fan", SMALL_RUN_WIDTH), SMALL_RUN_WIDTH, runs,
                           SMALL_RUN_WIDTH + 2)
        return {**reply, "runs": runs}


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) / 1024 for line in fh if line.startswith("VmRSS:"))


if __name__ == "__main__":
    sys.exit(serve(GraflowDistAdapter))
