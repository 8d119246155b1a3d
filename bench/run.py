#!/usr/bin/env python
"""graflow-dist and its peers side by side, in one run on one private redis-server.

    .venv/bin/python bench/run.py [--peers all|none|rq,celery,...]
        [--workloads fanout,chain,small,scale] [--repeats 5] [--quick] [--out PATH]

Every system (graflow-dist, RQ, Celery, Dramatiq, Graflow 0.2.0, Dask distributed)
runs the same no-op workloads with 2 worker processes, driven by its adapter in
bench/peers/ as a child process (the peers from their own virtualenv,
bench/.peers-venv, installed on first use). Repeats are interleaved system by system,
so drifting machine noise hits all alike; the scale workload runs last, once, on fresh
processes, and reports their peak RSS. Prints one table (medians, min..max, and the
ratio graflow-dist / peer) and writes JSON (default bench/results/latest.json; --quick
writes nothing unless --out is given). Everything runs on 127.0.0.1; every process
started is stopped by PID (process groups), also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import redis
from benchlib import (
    BENCH_DIR,
    REPO_DIR,
    MemorySampler,
    Probe,
    background_rate,
    tail,
    terminate_on_signals,
    uninterruptible,
)
from peers import GRAFLOW_DIST, PEERS, System
from peers.host import SystemProcess, peak_rss_mb
from peers.venv import peers_python
from report import WORKLOADS, print_table, summarise

from graflow_dist.embedded import RedisServer

RUN_TIMEOUT_S = 900.0
SETTLE_S = 0.05  # after a timed run, before the Redis/CPU probe closes
SIZES = {  # workload -> (default, --quick)
    "fanout": (1000, 40), "chain": (200, 10), "small": (300, 10), "scale": (None, 300)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peers", default="all", help="all, none, or a comma-separated "
                    f"subset of {','.join(PEERS)} (default all)")
    ap.add_argument("--workloads", default="fanout,chain,small,scale",
                    help="comma-separated subset of fanout,chain,small,scale")
    ap.add_argument("--repeats", type=int, default=None, help="default 5 (1 with --quick)")
    ap.add_argument("--fanout", type=int, default=None, help="fan-out width N (default "
                    "1000; 40 with --quick)")
    ap.add_argument("--chain", type=int, default=None, help="chain length M (default 200; "
                    "10 with --quick)")
    ap.add_argument("--small", type=int, default=None, help="small runs (12-task "
                    "workflows) and single jobs submitted (default 300; 10 with --quick)")
    ap.add_argument("--scale", type=int, default=None, help="graflow-dist's scale fan-out "
                    "(default 200,000; 300 with --quick)")
    ap.add_argument("--scale-peers", type=int, default=None, help="the peers' scale "
                    "fan-out (default: per peer, a size it survives; 300 with --quick)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes per system")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, 1 repeat, no warm-up "
                    "(a smoke run; numbers are meaningless)")
    ap.add_argument("--aof", action="store_true", help="redis-server with appendonly "
                    "everysec (as `graflow-dist up` runs it)")
    ap.add_argument("--out", default=None, help="JSON output path (default "
                    "bench/results/latest.json; none for --quick)")
    args = ap.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 5
    for name, (normal, quick) in SIZES.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else normal)
    if args.scale is None:
        args.scale = GRAFLOW_DIST.scale_size
    if args.quick and args.scale_peers is None:
        args.scale_peers = SIZES["scale"][1]
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = set(args.workloads) - set(SIZES)
    if unknown:
        ap.error(f"unknown workload(s) {', '.join(sorted(unknown))}; "
                 f"choose from {', '.join(SIZES)}")
    names = (list(PEERS) if args.peers == "all" else [] if args.peers == "none"
             else [p.strip() for p in args.peers.split(",") if p.strip()])
    unknown = set(names) - set(PEERS)
    if unknown:
        ap.error(f"unknown peer(s) {', '.join(sorted(unknown))}; choose from {', '.join(PEERS)}")
    args.systems = [GRAFLOW_DIST, *(PEERS[n] for n in names)]
    if args.out is None and not args.quick:
        args.out = str(BENCH_DIR / "results" / "latest.json")
    return args


# --- measurements -------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, url: str, tmp: Path) -> None:
        self.args = args
        self.url = url
        self.tmp = tmp
        self.r = redis.Redis.from_url(url)
        self.running: list[SystemProcess] = []
        self.background: dict[str, float] = {}
        self.results: dict[str, dict[str, list[dict[str, Any]]]] = {}
        self.versions: dict[str, dict[str, str]] = {}
        self.failures: dict[str, str] = {}

    def launch(self, system: System, phase: str) -> SystemProcess | None:
        python = sys.executable if system.in_repo_venv else peers_python()
        proc = SystemProcess(system.key, system.module, python, self.url, self.args.workers,
                             self.tmp / phase / system.key)
        self.running.append(proc)
        try:
            proc.start()
        except Exception as exc:
            self.fail(system, f"start: {exc}")
            return None
        self.versions[system.key] = proc.versions
        return proc

    def fail(self, system: System, why: str) -> None:
        """A peer that fails is reported, not fatal; graflow-dist failing is."""
        if system is GRAFLOW_DIST:
            raise RuntimeError(f"graflow-dist failed: {why}")
        print(f"warning: {system.label} failed: {why}", file=sys.stderr, flush=True)
        self.failures[system.key] = why

    def stop(self, proc: SystemProcess) -> None:
        with uninterruptible():
            proc.stop()
        if proc in self.running:
            self.running.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self.running):
            self.stop(proc)
        self.r.close()

    def measure(self, system: System, proc: SystemProcess, workload: str, size: int
                ) -> dict[str, Any] | None:
        if system.key in self.failures:
            return None
        try:
            with Probe(self.r, proc.pids()) as probe:
                reply = proc.run(workload, size, RUN_TIMEOUT_S)
                time.sleep(SETTLE_S)  # let end-of-run housekeeping land inside the probe
        except Exception as exc:
            self.fail(system, f"{workload} {size}: {exc}")
            return None
        tasks = reply["tasks"]
        net = probe.net_commands(Counter(reply.pop("own_commands", {})), self.background)
        entry = {**reply, "size": size,
                 "commands_per_task": sum(net.values()) / tasks,
                 "commands_by_name_per_task": {k: round(v / tasks, 3) for k, v in
                                               sorted(net.items(), key=lambda kv: -kv[1])},
                 "cpu_ms_per_task": {k: round(v * 1e3 / tasks, 4)
                                     for k, v in probe.cpu.items() if v > 0}}
        self.results.setdefault(system.key, {}).setdefault(workload, []).append(entry)
        return entry

    def plan(self, system: System, proc: SystemProcess) -> list[tuple[str, int]]:
        """The (workload, size) pairs of one repeat for one system."""
        a, out = self.args, []
        for workload in a.workloads:
            if workload == "scale":
                continue
            size = getattr(a, workload)
            out.append((workload, size))
            out += [(extra, size) for extra in system.extra
                    if WORKLOADS[extra].compare_to == workload and extra in proc.workloads]
        return [(w, s) for w, s in out if w in proc.workloads]

    def repeats(self) -> None:
        procs = [(s, self.launch(s, "repeats")) for s in self.args.systems]
        live = [(s, p) for s, p in procs if p is not None]
        if not self.args.quick:  # warm-up: imports, caches, code paths
            for system, proc in live:
                for workload, size in self.plan(system, proc):
                    self.measure(system, proc, workload, size)
            self.results.clear()
        self.background = background_rate(self.r, 0.5 if self.args.quick else 2.0)
        for i in range(self.args.repeats):
            t0 = time.perf_counter()
            for system, proc in live:
                for workload, size in self.plan(system, proc):
                    self.measure(system, proc, workload, size)
            print(f"repeat {i + 1}/{self.args.repeats} done in "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
        for _, proc in live:
            self.stop(proc)

    def scale(self) -> None:
        """Once per system, on fresh processes: tasks/s and the peak RSS of each."""
        for system in self.args.systems:
            proc = self.launch(system, "scale")
            if proc is None or "scale" not in proc.workloads:
                continue
            size = (self.args.scale if system is GRAFLOW_DIST
                    else self.args.scale_peers or system.scale_size)
            t0 = time.perf_counter()
            with MemorySampler(self.url) as memory:
                entry = self.measure(system, proc, "scale", size)
            if entry is not None:
                entry["redis_used_memory_mb"] = memory.summary_mb()
                entry["redis_peak_bytes_per_task"] = round(
                    (memory.peak - memory.before) / entry["tasks"])
                entry["peak_rss_mb"] = {role: [peak_rss_mb(pid) for pid in pids]
                                        for role, pids in proc.pids().items()}
                print(f"scale {system.label} {size:,}: {time.perf_counter() - t0:.0f} s",
                      flush=True)
            self.stop(proc)


# --- environment and main ------------------------------------------------------------


def environment(url: str) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    try:
        server = client.info("server")
    finally:
        client.close()
    try:
        sha = subprocess.run(["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5).stdout.strip()
        dirty = bool(subprocess.run(
            ["git", "-C", str(REPO_DIR), "status", "--porcelain", "--", "graflow_dist"],
            capture_output=True, text=True, timeout=5).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        sha, dirty = "", False
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "git": sha,
        "graflow_dist_modified_since_commit": dirty,
        "python": platform.python_version(), "cpus": os.cpu_count(),
        "redis_server": server.get("redis_version"), "redis_py": redis.__version__,
        "platform": platform.platform(), "loadavg_start": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with terminate_on_signals(), tempfile.TemporaryDirectory(prefix="gf-bench-") as tmpdir:
        tmp = Path(tmpdir)
        server = RedisServer(appendonly=args.aof, dir=str(tmp / "redis"))
        bench: Bench | None = None
        try:
            server.start()
            bench = Bench(args, server.url, tmp)
            env = environment(server.url)
            print(f"redis-server pid {server.pid} on {server.url}; systems: "
                  + ", ".join(s.label for s in args.systems), flush=True)
            if set(args.workloads) - {"scale"}:
                bench.repeats()
            if "scale" in args.workloads:
                bench.scale()
            env["versions"] = bench.versions
            out = summarise(args, bench.results, bench.failures, env)
            print_table(args, out)
        except Exception:
            for log in sorted(tmp.glob("**/*.log")):
                print(f"--- tail of {log.relative_to(tmp)} ---\n{tail(log, 1500)}",
                      file=sys.stderr)
            raise
        finally:
            with uninterruptible():
                if bench is not None:
                    bench.stop_all()
                server.close()
    if args.out:
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
