"""Celery: Redis broker and result backend, 2 ``--pool solo`` worker processes (one
task at a time each, like RQ's SimpleWorker); a chain is ``chain(...)``, a fan-out is
``chain(head, chord(N no-ops, join))``.

Runs in the peers' virtualenv; the workers import this module (``-A``).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from celery import Celery, chain, chord

from peers.base import (
    DEFAULT_RESULT_TIMEOUT_S,
    SMALL_RUN_WIDTH,
    URL_ENV,
    Adapter,
    Measurement,
    measured,
    serve,
    versions,
    wait_for,
)

QUEUE = "bench-celery"

app = Celery("bench", broker=os.environ.get(URL_ENV, "redis://127.0.0.1:6379/0"),
             backend=os.environ.get(URL_ENV, "redis://127.0.0.1:6379/0"))
app.conf.update(task_default_queue=QUEUE, broker_connection_retry_on_startup=True,
                worker_hijack_root_logger=False)


@app.task(name="bench.noop")
def noop(*_args: Any) -> None:
    return None


@app.task(name="bench.join")
def join(*_args: Any, n: int = 0) -> int:
    return n


def fan(n: int) -> Any:
    return chain(noop.si(), chord([noop.si() for _ in range(n)], join.si(n=n)))


class CeleryAdapter(Adapter):
    name = "celery"

    def start(self) -> None:
        os.environ[URL_ENV] = self.redis_url
        app.conf.update(broker_url=self.redis_url, result_backend=self.redis_url)
        celery_bin = str(Path(sys.executable).parent / "celery")
        for i in range(self.workers):
            self.services.spawn("workers", [
                celery_bin, "-A", "peers.celery_adapter", "worker", "--pool", "solo",
                "-Q", QUEUE, "-n", f"bench{i}@%h", "--loglevel", "WARNING",
                "--without-gossip", "--without-mingle", "--without-heartbeat"],
                f"celery-{i}.log", env={URL_ENV: self.redis_url})
        wait_for(self._all_up, 60, "celery workers to answer a ping", self.services, 0.2)
        noop.delay().get(timeout=30)  # warm the result path (pub/sub) outside timings

    def _all_up(self) -> bool:
        return len(app.control.ping(timeout=0.5) or []) >= self.workers

    def versions(self) -> dict[str, str]:
        return versions("celery", "kombu", "redis")

    def _time(self, tasks: int, submit: Any, **extra: Any) -> Measurement:
        t0 = time.perf_counter()
        results = submit()
        for result in results:
            result.get(timeout=DEFAULT_RESULT_TIMEOUT_S, disable_sync_subtasks=False)
        return measured(time.perf_counter() - t0, tasks, **extra)

    def run_fanout(self, n: int) -> Measurement:
        return self._time(n + 2, lambda: [fan(n).apply_async()])

    run_scale = run_fanout

    def run_chain(self, m: int) -> Measurement:
        return self._time(m, lambda: [chain(noop.si() for _ in range(m)).apply_async()])

    def run_small(self, runs: int) -> Measurement:
        return self._time(runs * (SMALL_RUN_WIDTH + 2),
                          lambda: [fan(SMALL_RUN_WIDTH).apply_async() for _ in range(runs)],
                          runs=runs)

    def run_single(self, jobs: int) -> Measurement:
        return self._time(jobs, lambda: [noop.delay() for _ in range(jobs)], runs=jobs)


if __name__ == "__main__":
    sys.exit(serve(CeleryAdapter))
