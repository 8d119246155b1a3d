"""Dramatiq: Redis broker, Results middleware (Redis backend) and GroupCallbacks; one
``dramatiq`` process forking 2 worker processes with 1 worker thread each. A chain is a
``pipeline``; a fan-out is a head actor that runs a ``group`` of N no-ops with a
completion callback (the join), which is how a Dramatiq DAG continues after a step.

Runs in the peers' virtualenv; the workers import this module.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import dramatiq
from dramatiq import group, pipeline
from dramatiq.brokers.redis import RedisBroker
from dramatiq.message import Message
from dramatiq.middleware.group_callbacks import GroupCallbacks
from dramatiq.rate_limits.backends.redis import RedisBackend as RedisRateLimiterBackend
from dramatiq.results import Results, ResultTimeout
from dramatiq.results.backends.redis import RedisBackend

from peers.base import (
    DEFAULT_RESULT_TIMEOUT_S,
    SMALL_RUN_WIDTH,
    URL_ENV,
    Adapter,
    Measurement,
    measured,
    serve,
    versions,
)

QUEUE = "bench-dramatiq"
RESULT_SLICE_MS = 4000  # blocking result reads, shorter than redis-py's socket timeout

_url = os.environ.get(URL_ENV, "redis://127.0.0.1:6379/0")
results_backend = RedisBackend(url=_url)
broker = RedisBroker(url=_url)
broker.add_middleware(Results(backend=results_backend))
broker.add_middleware(GroupCallbacks(RedisRateLimiterBackend(url=_url)))
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE, store_results=True)
def noop(*_args: Any) -> None:
    return None


@dramatiq.actor(queue_name=QUEUE)
def leaf(*_args: Any) -> None:
    return None


@dramatiq.actor(queue_name=QUEUE, store_results=True)
def join(n: int) -> int:
    return n


@dramatiq.actor(queue_name=QUEUE)
def head(n: int, join_message: dict[str, Any]) -> None:
    fan_out = group(leaf.message() for _ in range(n))
    fan_out.add_completion_callback(Message(**join_message))
    fan_out.run()


def fan(n: int) -> Message:
    """Send a fan-out; returns the join's message (its result ends the run)."""
    join_message = join.message(n)
    head.send(n, join_message.asdict())
    return join_message


def result(message: Message) -> Any:
    deadline = time.monotonic() + DEFAULT_RESULT_TIMEOUT_S
    while True:
        try:
            return message.get_result(backend=results_backend, block=True,
                                      timeout=RESULT_SLICE_MS)
        except ResultTimeout:
            if time.monotonic() > deadline:
                raise


class DramatiqAdapter(Adapter):
    name = "dramatiq"

    def start(self) -> None:
        dramatiq_bin = str(Path(sys.executable).parent / "dramatiq")
        self.services.spawn("workers", [
            dramatiq_bin, "peers.dramatiq_adapter", "--processes", str(self.workers),
            "--threads", "1", "--queues", QUEUE], "dramatiq.log",
            env={URL_ENV: self.redis_url})
        deadline = time.monotonic() + 60
        while True:  # a worker answers
            self.services.check_alive()
            try:
                result(noop.send())
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
        time.sleep(1.0)  # and the other forked worker is consuming too

    def versions(self) -> dict[str, str]:
        return versions("dramatiq", "redis")

    def _time(self, tasks: int, submit: Any, **extra: Any) -> Measurement:
        t0 = time.perf_counter()
        for message in submit():
            result(message)
        return measured(time.perf_counter() - t0, tasks, **extra)

    def run_fanout(self, n: int) -> Measurement:
        return self._time(n + 2, lambda: [fan(n)])

    run_scale = run_fanout

    def run_chain(self, m: int) -> Measurement:
        def submit() -> list[Message]:
            steps = [leaf.message_with_options(pipe_ignore=True) for _ in range(m - 1)]
            pipe = pipeline([*steps, noop.message_with_options(pipe_ignore=True)])
            pipe.run()
            return [pipe.messages[-1]]

        return self._time(m, submit)

    def run_small(self, runs: int) -> Measurement:
        return self._time(runs * (SMALL_RUN_WIDTH + 2),
                          lambda: [fan(SMALL_RUN_WIDTH) for _ in range(runs)], runs=runs)

    def run_single(self, jobs: int) -> Measurement:
        return self._time(jobs, lambda: [noop.send() for _ in range(jobs)], runs=jobs)


if __name__ == "__main__":
    sys.exit(serve(DramatiqAdapter))
