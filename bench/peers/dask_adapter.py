"""Dask distributed: a ``LocalCluster`` of 2 worker processes (1 thread each) on
127.0.0.1 with its own scheduler (inside this driver process, as LocalCluster runs it;
Dask does not use Redis). Futures: a chain submits each step with the previous
future as its argument; a fan-out maps N no-ops over the head's future and submits a
join over their futures. Every task is submitted with ``pure=False`` (identical pure
calls would be deduplicated into one).

Runs in the peers' virtualenv; the workers unpickle this module's functions by
reference (the spawned worker processes inherit ``sys.path``).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from distributed import Client, Future, LocalCluster, wait

from peers.base import (
    DEFAULT_RESULT_TIMEOUT_S,
    SMALL_RUN_WIDTH,
    Adapter,
    Measurement,
    measured,
    serve,
    versions,
)


def noop(*_args: Any) -> None:
    return None


def join(_leaves: list[Any], n: int) -> int:
    return n


class DaskAdapter(Adapter):
    name = "dask"

    def start(self) -> None:
        self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1,
                                    processes=True, host="127.0.0.1",
                                    dashboard_address=None)
        self.client = Client(self.cluster)
        self.client.wait_for_workers(self.workers, timeout=60)
        self.client.submit(noop, pure=False).result(timeout=30)

    def stop(self) -> None:
        if hasattr(self, "client"):
            self.client.close()
            self.cluster.close()

    def pids(self) -> dict[str, list[int]]:
        pids = self.client.run(os.getpid)  # worker address -> pid
        return {"workers": sorted(pids.values())}

    def versions(self) -> dict[str, str]:
        return versions("dask", "distributed")

    def _fan(self, n: int) -> Future:
        head = self.client.submit(noop, pure=False)
        leaves = self.client.map(noop, [head] * n, pure=False)
        return self.client.submit(join, leaves, n, pure=False)

    def _time(self, tasks: int, submit: Any, **extra: Any) -> Measurement:
        t0 = time.perf_counter()
        futures = submit()
        wait(futures, timeout=DEFAULT_RESULT_TIMEOUT_S)
        self.client.gather(futures)
        seconds = time.perf_counter() - t0
        del futures  # release the results on the workers
        return measured(seconds, tasks, **extra)

    def run_fanout(self, n: int) -> Measurement:
        return self._time(n + 2, lambda: [self._fan(n)])

    run_scale = run_fanout

    def run_chain(self, m: int) -> Measurement:
        def submit() -> list[Future]:
            step = self.client.submit(noop, pure=False)
            for _ in range(m - 1):
                step = self.client.submit(noop, step, pure=False)
            return [step]

        return self._time(m, submit)

    def run_small(self, runs: int) -> Measurement:
        return self._time(runs * (SMALL_RUN_WIDTH + 2),
                          lambda: [self._fan(SMALL_RUN_WIDTH) for _ in range(runs)],
                          runs=runs)

    def run_single(self, jobs: int) -> Measurement:
        return self._time(jobs, lambda: [self.client.submit(noop, pure=False)
                                         for _ in range(jobs)], runs=jobs)


if __name__ == "__main__":
    sys.exit(serve(DaskAdapter))
