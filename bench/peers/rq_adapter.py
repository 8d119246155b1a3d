"""RQ: SimpleWorkers on one queue; a chain is jobs with ``depends_on`` the previous one,
a fan-out is a head, N jobs ``depends_on`` it and a join ``depends_on`` all N. Also the
plain baselines: N independent jobs (``fanout_plain``) and one job at a time, each
enqueued once the previous result is in (``chain_wait``).

Runs in the repository's virtualenv (RQ is a dependency of graflow-dist).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchlib import CountingRedis
from rq import Queue
from rq.job import Job, JobStatus

from peers.base import (
    DEFAULT_RESULT_TIMEOUT_S,
    SMALL_RUN_WIDTH,
    Adapter,
    Measurement,
    measured,
    serve,
    versions,
    wait_for,
)

QUEUE = "bench-rq"
NOOP = "rq_tasks.noop"
ENQUEUE_CHUNK = 500
POLL_S = 0.002
RESULT_TIMEOUT_S = 4  # < redis-py's default socket timeout (5 s)
# MAINTENANCE_NOTE: RQ 3.0 moves a job whose dependencies are met to a "ready" registry
# and then enqueues it under WATCH of the whole registry; when two workers do this at
# once the loser leaves the job there for maintenance (every 600 s, and only when a
# worker wakes up). Concurrent small runs would stall for minutes, so the waiting
# client does what maintenance does, every RESCUE_AFTER_S, and reports the count.
RESCUE_AFTER_S = 0.05
STALL_S = 30.0  # dependents can also stay deferred for good: fail, do not hang


class RQAdapter(Adapter):
    name = "rq"

    def start(self) -> None:
        self.r = CountingRedis.from_url(self.redis_url)
        rq_bin = str(Path(sys.executable).parent / "rq")
        names = [f"bench-rq-{i}" for i in range(self.workers)]
        for name in names:
            self.services.spawn("workers", [
                rq_bin, "worker", "-u", self.redis_url, "--worker-class", "rq.SimpleWorker",
                "-P", ".", "-n", name, "--quiet", QUEUE], f"{name}.log")
        wait_for(lambda: all(self.r.hget(f"rq:worker:{n}", "state") == b"idle"
                             for n in names), 30, "rq workers to block on their queue",
                 self.services)
        time.sleep(0.3)  # "idle" is written just before the blocking pop
        self.q = Queue(QUEUE, connection=self.r)
        self.q.get_redis_server_version()  # one INFO, cached, outside timings

    def stop(self) -> None:
        super().stop()
        self.r.close()

    def versions(self) -> dict[str, str]:
        return versions("rq", "redis")

    # -- helpers --

    def _wait_finished(self, base: int, jobs: int) -> int:
        """Until ``jobs`` more jobs are in the finished registry; returns how many ready
        dependents had to be rescued from RQ's ready registry (see MAINTENANCE_NOTE)."""
        finished = f"rq:finished:{QUEUE}"
        deadline = time.monotonic() + DEFAULT_RESULT_TIMEOUT_S
        next_rescue = time.monotonic() + RESCUE_AFTER_S
        rescued, seen, progress_at = 0, -1, time.monotonic()
        with self.r.counted():
            while (done := self.r.zcard(finished) - base) < jobs:
                now = time.monotonic()
                if done != seen:
                    seen, progress_at = done, now
                if now - progress_at > STALL_S:
                    deferred = self.r.zcard(f"rq:deferred:{QUEUE}")
                    raise RuntimeError(f"rq: no job finished for {STALL_S} s ({done} of "
                                       f"{jobs} done, {deferred} deferred)")
                if now > deadline:
                    raise RuntimeError(f"rq: {jobs} jobs not finished after "
                                       f"{DEFAULT_RESULT_TIMEOUT_S} s")
                if now > next_rescue:
                    rescued += len(self.q.ready_job_registry.cleanup())
                    next_rescue = now + RESCUE_AFTER_S
                time.sleep(POLL_S)
        return rescued

    def _measure(self, jobs: int, enqueue: Callable[[], list[Job]]) -> Measurement:
        """Enqueue, wait until ``jobs`` jobs finished, check the last ones succeeded."""
        base = self.r.zcard(f"rq:finished:{QUEUE}")
        self.r.counts.clear()
        t0 = time.perf_counter()
        last = enqueue()
        enqueued = time.perf_counter() - t0
        rescued = self._wait_finished(base, jobs)
        seconds = time.perf_counter() - t0
        own = dict(self.r.counts)
        for job in last[:3]:
            if job.get_status() != JobStatus.FINISHED:
                raise RuntimeError(f"rq job {job.id} is {job.get_status()}, not finished")
        return measured(seconds, jobs, own_commands=own, enqueue_seconds=enqueued,
                        rescued_ready_jobs=rescued)

    def _fan(self, n: int) -> Job:
        head = self.q.enqueue(NOOP)
        leaves = [self.q.enqueue(NOOP, depends_on=head) for _ in range(n)]
        return self.q.enqueue(NOOP, n, depends_on=leaves)

    # -- workloads --

    def run_fanout(self, n: int) -> Measurement:
        return self._measure(n + 2, lambda: [self._fan(n)])

    run_scale = run_fanout

    def run_chain(self, m: int) -> Measurement:
        def enqueue() -> list[Job]:
            job = self.q.enqueue(NOOP)
            for _ in range(m - 1):
                job = self.q.enqueue(NOOP, depends_on=job)
            return [job]

        return self._measure(m, enqueue)

    def run_small(self, runs: int) -> Measurement:
        reply = self._measure(runs * (SMALL_RUN_WIDTH + 2),
                              lambda: [self._fan(SMALL_RUN_WIDTH) for _ in range(runs)])
        return {**reply, "runs": runs}

    def run_single(self, jobs: int) -> Measurement:
        reply = self._measure(jobs, lambda: [self.q.enqueue(NOOP) for _ in range(jobs)])
        return {**reply, "runs": jobs}

    def run_fanout_plain(self, n: int) -> Measurement:
        """N independent jobs, enqueued in pipelines of 500."""
        def enqueue() -> list[Job]:
            jobs: list[Job] = []
            for start in range(0, n, ENQUEUE_CHUNK):
                with self.r.pipeline(transaction=True) as pipe:
                    jobs += self.q.enqueue_many(
                        [Queue.prepare_data(NOOP, description=NOOP)
                         for _ in range(min(ENQUEUE_CHUNK, n - start))], pipeline=pipe)
                    pipe.execute()
            return jobs[-1:]

        return self._measure(n, enqueue)

    def run_chain_wait(self, m: int) -> Measurement:
        """One job at a time, each enqueued when the previous one's result is in (a
        blocking XREAD on the job's result stream)."""
        for _ in range(5):  # warm the result-stream path
            self._result(self.q.enqueue(NOOP))
        self.r.counts.clear()
        t0 = time.perf_counter()
        for _ in range(m):
            self._result(self.q.enqueue(NOOP))
        return measured(time.perf_counter() - t0, m, own_commands=dict(self.r.counts))

    def _result(self, job: Job) -> None:
        with self.r.counted():
            result = job.latest_result(timeout=RESULT_TIMEOUT_S)
        if result is None or result.type != result.Type.SUCCESSFUL:
            raise RuntimeError(f"rq job {job.id} did not succeed: {result!r}")


if __name__ == "__main__":
    sys.exit(serve(RQAdapter))
