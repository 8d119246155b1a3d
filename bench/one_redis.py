#!/usr/bin/env python
"""Where one coordinator and one Redis stop: one large fan-out, measured (docs/scaling.md).

    .venv/bin/python bench/one_redis.py [--tasks 200000] [--workers 2]

Starts a private redis-server on 127.0.0.1 and a ``LocalCluster`` (1 coordinator,
``--workers`` worker processes), submits one fan-out (head, N no-ops, join) and prints:
completions/s (client clock and the run's own submitted..finished), the CPU of every
role per task and the share of a core it used while the run lasted, Redis commands per
task (``INFO commandstats`` delta, end-of-run housekeeping included), Redis memory
(``used_memory`` before, peak sampled every 0.1 s, and a few seconds after the end, per
task), the peak RSS of each process, and the Redis calls that held Redis longest
(``SLOWLOG``, scripts by name). Unlike ``bench/run.py`` its Redis clients wait as long
as a script holds Redis. Every process is stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import os
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
    LONG_SCRIPT_WAIT_S,
    MemorySampler,
    children_of,
    commandstats,
    cpu_seconds,
    fanout_workflow,
    redis_cpu,
    terminate_on_signals,
    uninterruptible,
)
from peers.host import peak_rss_mb  # noqa: E402

from graflow_dist import Client  # noqa: E402
from graflow_dist.broker.keys import Keyspace  # noqa: E402
from graflow_dist.broker.scripts import source  # noqa: E402
from graflow_dist.embedded import RedisServer  # noqa: E402
from graflow_dist.embedded.cluster import LocalCluster  # noqa: E402

cloudpickle.register_pickle_by_value(benchlib)
SLOWLOG_US = 20_000  # scripts and commands that held Redis longer than this
SETTLE_S = 3.0  # after the run: the coordinator's end-of-run housekeeping
SCRIPTS = ("claim", "expire_run", "extend", "fail_job", "fenced_apply", "finish",
           "leader_acquire", "leader_release", "lease_grace", "quarantine", "reap_mark",
           "report", "submit_run")


def script_names() -> dict[str, str]:
    keyspace = Keyspace()
    return {hashlib.sha1(source(n, keyspace).encode()).hexdigest(): n for n in SCRIPTS}


def wait_while_busy(r: redis.Redis) -> None:
    """Wait until Redis stops answering BUSY (a script running past lua-time-limit)."""
    deadline = time.monotonic() + LONG_SCRIPT_WAIT_S
    while True:
        try:
            r.ping()
            return
        except redis.ResponseError as exc:
            if not str(exc).startswith("BUSY") or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=200_000, help="fan-out width N")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    n = args.tasks
    with terminate_on_signals(), tempfile.TemporaryDirectory(prefix="gf-one-") as tmp:
        server = RedisServer(dir=str(Path(tmp) / "redis"))
        cluster: LocalCluster | None = None
        try:
            server.start()
            r = redis.Redis.from_url(server.url, socket_timeout=LONG_SCRIPT_WAIT_S)
            r.config_set("slowlog-log-slower-than", SLOWLOG_US)
            cluster = LocalCluster(args.workers, redis_url=server.url,
                                   data_dir=str(Path(tmp) / "cluster")).start()
            assert cluster.coordinators[0] is not None
            pids = {"coordinator": [cluster.coordinators[0].pid],
                    "workers": [c for w in cluster.workers for c in children_of(w.pid)],
                    "worker supervisors": [w.pid for w in cluster.workers],
                    "client": [os.getpid()]}
            wf = fanout_workflow(n)
            client = Client(redis_client=r)
            cmd0, rcpu0 = commandstats(r), redis_cpu(r)
            cpu0 = {k: sum(cpu_seconds(p) for p in v) for k, v in pids.items()}
            with MemorySampler(server.url) as memory:
                t0 = time.perf_counter()
                run = client.submit(wf, max_steps=n + 10)
                submitted = time.perf_counter() - t0
                result = run.wait(timeout=3600)
                seconds = time.perf_counter() - t0
                cpu = {k: sum(cpu_seconds(p) for p in v) - cpu0[k] for k, v in pids.items()}
                cpu["redis-server"] = redis_cpu(r) - rcpu0
                time.sleep(SETTLE_S + n / 50_000)
                wait_while_busy(r)
                commands = commandstats(r) - cmd0  # with the end-of-run housekeeping
            if result != n:
                raise RuntimeError(f"the fan-out returned {result!r}, expected {n}")
            info = run.info()
            rss = {k: [peak_rss_mb(p) for p in v] for k, v in pids.items()}
            slow = r.slowlog_get(50)
        finally:
            with uninterruptible():
                if cluster is not None:
                    cluster.stop()
                server.close()
    tasks = n + 2
    server_s = float(info["finished_at"]) - float(info["submitted_at"])
    commands.pop("info", None)
    commands.pop("slowlog|get", None)
    print(f"fan-out of {n:,} no-ops, {args.workers} workers, {os.cpu_count()} CPUs")
    print(f"  {seconds:.1f} s end to end ({tasks / seconds:,.0f} tasks/s), submit "
          f"{submitted:.2f} s; server side {server_s:.1f} s ({tasks / server_s:,.0f}/s)")
    print(f"  Redis commands/task {sum(commands.values()) / tasks:.2f}: " + ", ".join(
        f"{k} {v / tasks:.2f}" for k, v in commands.most_common(8)))
    print("  CPU ms/task (share of one core while the run lasted):")
    for role, s in cpu.items():
        print(f"    {role:<19} {s * 1e3 / tasks:7.4f}  ({s / seconds:.2f})")
    mb = memory.summary_mb()
    print(f"  Redis used_memory MB: before {mb['before']}, peak {mb['peak']}, "
          f"{SETTLE_S + n / 50_000:.0f} s after {mb['after']}; per task: peak "
          f"{(memory.peak - memory.before) / tasks:,.0f} B, after "
          f"{(memory.after - memory.before) / tasks:,.0f} B")
    print("  peak RSS MB: " + "; ".join(
        f"{k} {', '.join(f'{v:.0f}' for v in vs if v is not None)}" for k, vs in rss.items()))
    names = script_names()
    print(f"  longest Redis calls (> {SLOWLOG_US / 1000:.0f} ms):")
    for entry in sorted(slow, key=lambda e: -e["duration"])[:6]:
        words = [w.decode(errors="replace") for w in bytes(entry["command"]).split()[:2]]
        what = names.get(words[1], words[1]) if words[0].upper() == "EVALSHA" else words[0]
        print(f"    {entry['duration'] / 1000:8.0f} ms  {words[0]} {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
