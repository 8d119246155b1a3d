#!/usr/bin/env python
"""How long a checkpoint of a large frontier takes to write and to resume.

    .venv/bin/python bench/checkpoints.py [--tasks 10000] [--repeats 7] [--distinct]

A fan-out ``source >> parallel(N tasks) >> join`` whose source completed: N pending
specs. Measured, median of the repeats:

- **in process**: `CheckpointManager.create_checkpoint` of a context whose scheduler
  holds that frontier (graph pickled, channel, three files fsynced), and
  `resume_from_checkpoint` of it;
- **coordinator**: what a coordinator does when a run asks for a checkpoint: the
  frontier snapshot plus `checkpoint_run` (graph code and channel copied from Redis,
  three files), on a private redis-server; and `Client.resume` of that checkpoint
  (load, verify, submit).

The N tasks are bound instances of one function (``work(x=i)``, the usual way to fan
out); ``--distinct`` makes each a function of its own (a worst case for pickling).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("GRAFLOW_DIST_SECRET", "bench-" + secrets.token_hex(16))

import benchlib  # noqa: E402
import cloudpickle  # noqa: E402

from graflow_dist import Client, parallel, task, workflow  # noqa: E402
from graflow_dist.broker import Broker  # noqa: E402
from graflow_dist.coordinator.checkpoints import checkpoint_run  # noqa: E402
from graflow_dist.core.checkpoint import CheckpointManager  # noqa: E402
from graflow_dist.embedded import RedisServer  # noqa: E402
from graflow_dist.scheduler.events import CheckpointRequest, TaskOutcome  # noqa: E402
from graflow_dist.scheduler.state import Scheduler  # noqa: E402

cloudpickle.register_pickle_by_value(benchlib)


def fanout(n: int, distinct: bool) -> Any:
    if distinct:
        return benchlib.fanout_workflow(n)

    @task
    def work(x: int) -> int:
        return x

    with workflow(f"ckpt-{n}") as wf:

        @task("source")
        def source() -> None:
            return None

        @task("join")
        def join() -> int:
            return n

        source >> parallel(*[work(task_id=f"leaf_{i}", x=i) for i in range(n)]) >> join
    return wf


def started(shape: Any, session_id: str) -> Scheduler:
    """A scheduler whose source completed: the fan-out is pending."""
    scheduler = Scheduler(shape, session_id)
    first = scheduler.start()
    source = next(s for s in first.dispatch if s.task_id == "source")
    scheduler.complete(source.token, TaskOutcome())
    return scheduler


def median_ms(fn: Callable[[int], Any], repeats: int) -> tuple[float, float, float, float]:
    """Wall-clock median, min and max, and the median CPU time of this process (on a
    busy machine, closer to what an idle one would show)."""
    times, cpu = [], []
    for i in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn(i)
        times.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    return statistics.median(times), min(times), max(times), statistics.median(cpu)


def show(label: str, figures: tuple[float, float, float, float]) -> None:
    med, low, high, cpu = figures
    print(f"{label:<46} {med:7.1f} ms  [{low:.1f}-{high:.1f}]  cpu {cpu:.1f} ms", flush=True)


def in_process(wf: Any, n: int, repeats: int, tmp: Path) -> None:
    ctx = wf.create_context()
    scheduler = started(ctx.graph.shape(ctx.default_max_cycles), ctx.session_id)
    assert len(scheduler.pending) == n
    ctx.attach_scheduler(scheduler)
    paths: list[str] = []

    def write(i: int) -> None:
        path, _meta = CheckpointManager.create_checkpoint(ctx, path=str(tmp / f"inproc-{i}"))
        paths.append(path)

    write(-1)  # warm-up
    show(f"in process: write ({n:,} pending)", median_ms(write, repeats))
    show("in process: resume_from_checkpoint",
         median_ms(lambda i: CheckpointManager.resume_from_checkpoint(paths[-1]), repeats))


def coordinator(wf: Any, n: int, repeats: int, tmp: Path) -> None:
    server = RedisServer(dir=str(tmp / "redis"))
    server.start()
    try:
        client = Client(server.url)
        run = client.submit(wf)
        broker = Broker(client.redis, client.keyspace)
        record, shape, _frontier = broker.runs.load(run.session_id)
        scheduler = started(shape, run.session_id)
        assert len(scheduler.pending) == n
        paths: list[str] = []

        def write(i: int) -> None:
            frontier = scheduler.snapshot()
            path, _meta = checkpoint_run(broker, record, frontier,
                                         CheckpointRequest(str(tmp / f"coord-{i}")), str(tmp))
            paths.append(path)

        write(-1)
        show(f"coordinator: snapshot + write ({n:,} pending)", median_ms(write, repeats))
        broker.runs.fail(run.session_id, _Stopped("benchmark"))  # let it be resubmitted

        def resume(i: int) -> None:
            client.resume(paths[-1])
            broker.runs.fail(run.session_id, _Stopped("benchmark"))

        show("coordinator: Client.resume (load + submit)", median_ms(resume, repeats))
        client.close()
    finally:
        server.close()


class _Stopped(Exception):
    pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--distinct", action="store_true",
                    help="a function of its own per task instead of bound instances")
    args = ap.parse_args()
    wf = fanout(args.tasks, args.distinct)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory(prefix="gf-ckpt-") as tmpdir:
        in_process(wf, args.tasks, args.repeats, Path(tmpdir))
        coordinator(wf, args.tasks, args.repeats, Path(tmpdir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
