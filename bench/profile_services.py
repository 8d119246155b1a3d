#!/usr/bin/env python
"""Profile graflow-dist's coordinator and workers (cProfile) over fan-out runs.

    .venv/bin/python bench/profile_services.py [--fanout 1000] [--runs 4] [--workers 2]
        [--chain N] [--small N] [--clock cpu|wall] [--top 25] [--keep DIR]

Starts a private redis-server on 127.0.0.1, runs the coordinator and the workers under
cProfile (only their main threads; the worker's heartbeat thread is not profiled),
submits the runs from this process (profiled around ``submit()`` only; ``--small N``
submits N small runs, head + 10 + join, all at once, then waits), stops the
services with SIGTERM so that they write their profiles, and prints the top functions
by own and by cumulative time, per role.

``--clock cpu`` (default) profiles process CPU time: where the CPU goes, with time
blocked on Redis costing nothing. ``--clock wall`` profiles wall time: time waiting for
Redis replies then shows up in the socket read functions (and idle waiting too).
cProfile's per-call overhead inflates call-heavy code: compare with the CPU-per-task
numbers of bench/run.py, which are measured without a profiler.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import secrets
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GRAFLOW_DIST_SECRET", "bench-" + secrets.token_hex(16))

import benchlib  # noqa: E402
import cloudpickle  # noqa: E402
import redis  # noqa: E402
from benchlib import (  # noqa: E402
    Children,
    chain_workflow,
    cpu_seconds,
    fanout_workflow,
    tail,
    terminate_on_signals,
    uninterruptible,
    wait_until,
)

from graflow_dist import Client  # noqa: E402
from graflow_dist.broker.connection import REDIS_URL_ENV  # noqa: E402
from graflow_dist.broker.keys import Keyspace  # noqa: E402
from graflow_dist.embedded import RedisServer  # noqa: E402

cloudpickle.register_pickle_by_value(benchlib)


# Runs a module under cProfile with the chosen clock; the profile is written when the
# service exits (SIGTERM makes it stop gracefully).
_WRAPPER = """
import cProfile, runpy, sys, time
out, clock, module = sys.argv[1], sys.argv[2], sys.argv[3]
sys.argv = [module, *sys.argv[4:]]
prof = cProfile.Profile(time.process_time if clock == "cpu" else time.perf_counter)
try:
    prof.runcall(runpy.run_module, module, run_name="__main__")
except SystemExit:
    pass
finally:
    prof.dump_stats(out)
"""


def service(kind: str, url: str, out: Path, extra: list[str], clock: str) -> list[str]:
    """A coordinator (``graflow-dist coordinator``), or a worker's executor process run
    on its own: where a worker's task code and reports run (its supervisor only polls
    and is left out)."""
    if kind == "worker":
        return [sys.executable, "-c", _WRAPPER, str(out), clock, "graflow_dist.worker.child",
                "--name", out.stem, *extra]
    return [sys.executable, "-c", _WRAPPER, str(out), clock, "graflow_dist.cli.main",
            "--redis-url", url, kind, *extra]


CLOCK = ["cpu"]


def show(title: str, files: list[Path], top: int, tasks: int) -> None:
    stats = pstats.Stats(*[str(f) for f in files], stream=io.StringIO())
    stats.strip_dirs()
    for sort, label in (("tottime", "own time"), ("cumulative", "cumulative time")):
        buf = io.StringIO()
        stats.stream = buf
        stats.sort_stats(sort).print_stats(top)
        text = buf.getvalue()
        body = text[text.find("ncalls"):] if "ncalls" in text else text
        print(f"\n=== {title}: top {top} by {label} ({tasks} tasks; "
              f"total {stats.total_tt:.2f} s {CLOCK[0]} in the main thread(s)) ===")
        print(body.rstrip())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fanout", type=int, default=1000)
    ap.add_argument("--chain", type=int, default=0, help="profile a chain of N instead")
    ap.add_argument("--small", type=int, default=0, help="profile N small runs (12 tasks) "
                    "submitted at once instead")
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--keep", default=None, help="keep the .prof files in this directory")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                    help="cpu: process CPU time (where CPU goes; blocking is free); "
                         "wall: wall-clock (time blocked on Redis replies shows up)")
    args = ap.parse_args()
    CLOCK[0] = args.clock
    with terminate_on_signals(), tempfile.TemporaryDirectory(prefix="gf-prof-") as tmpdir:
        tmp = Path(args.keep or tmpdir)
        tmp.mkdir(parents=True, exist_ok=True)
        server = RedisServer(dir=str(Path(tmpdir) / "redis"))
        children = Children()
        try:
            server.start()
            url = server.url
            coord = children.spawn(
                service("coordinator", url, tmp / "coordinator.prof",
                        ["--checkpoint-dir", str(Path(tmpdir) / "ckpt")], args.clock),
                Path(tmpdir) / "coordinator.log")
            workers = [children.spawn(service("worker", url, tmp / f"worker-{i}.prof", [],
                                              args.clock),
                                      Path(tmpdir) / f"worker-{i}.log",
                                      env={**os.environ, REDIS_URL_ENV: url})
                       for i in range(args.workers)]
            client_r = redis.Redis.from_url(url)
            ks = Keyspace.from_env()

            def ready() -> bool:
                for p in [coord, *workers]:
                    if p.poll() is not None:
                        raise RuntimeError("service exited:\n"
                                           + tail(Path(tmpdir) / "coordinator.log"))
                return bool(client_r.exists(ks.leader)) and \
                    client_r.zcard(ks.workers) >= args.workers
            wait_until(ready, 30, "coordinator lease and worker registration")
            if args.small:
                wf, expected, per_run = fanout_workflow(10), 10, 12
            elif args.chain:
                wf, expected, per_run = chain_workflow(args.chain), args.chain, args.chain
            else:
                wf, expected, per_run = fanout_workflow(args.fanout), args.fanout, \
                    args.fanout + 2
            client = Client(redis_client=client_r)
            client.submit(wf).wait(timeout=120)  # warm-up, not counted in the timings below
            pids = {"coordinator": [coord.pid], "workers": [w.pid for w in workers]}
            cpu0 = {k: sum(cpu_seconds(p) for p in v) for k, v in pids.items()}
            prof = cProfile.Profile(time.process_time if args.clock == "cpu"
                                    else time.perf_counter)
            t0 = time.perf_counter()
            if args.small:
                args.runs = args.small
                prof.enable()
                runs = [client.submit(wf) for _ in range(args.small)]
                prof.disable()
                if any(run.wait(timeout=120) != expected for run in runs):
                    raise RuntimeError("wrong result")
            for _ in range(0 if args.small else args.runs):
                prof.enable()
                run = client.submit(wf)
                prof.disable()
                if run.wait(timeout=120) != expected:
                    raise RuntimeError("wrong result")
            wall = time.perf_counter() - t0
            cpu = {k: sum(cpu_seconds(p) for p in v) - cpu0[k] for k, v in pids.items()}
            tasks = per_run * args.runs
            print(f"{args.runs} runs x {per_run} tasks in {wall:.2f} s "
                  f"({tasks / wall:,.0f} tasks/s under the profiler); CPU ms/task: "
                  + ", ".join(f"{k} {v * 1e3 / tasks:.3f}" for k, v in cpu.items()))
            client_r.close()
        finally:
            with uninterruptible():
                children.stop_all(timeout_s=30)
                server.close()
        # The warm-up run is in the service profiles too (one extra run's worth).
        total = per_run * (args.runs + 1)
        show("coordinator", [tmp / "coordinator.prof"], args.top, total)
        show(f"{args.workers} workers (merged)",
             [tmp / f"worker-{i}.prof" for i in range(args.workers)], args.top, total)
        client_file = tmp / "client-submit.prof"
        prof.dump_stats(str(client_file))
        show("client submit()", [client_file], min(args.top, 15), per_run * args.runs)
        if args.keep:
            print(f"\nprofiles kept in {tmp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
