#!/usr/bin/env python
"""graflow-dist vs raw RQ, measured in one run on one private redis-server.

    .venv/bin/python bench/run.py [--repeats 5] [--quick] [--out PATH]

Measures, interleaved repeat by repeat so drifting machine noise hits both sides alike:

1. graflow-dist fan-out: source >> parallel(N no-ops) >> join on a LocalCluster
   (1 coordinator + 2 worker processes); tasks/s from ``client.submit(wf)`` until
   ``.wait()`` returns (cluster start-up excluded).
2. graflow-dist chain: M no-op tasks in sequence; ms per step (submit .. wait / M).
3. RQ fan-out: 2 ``rq.SimpleWorker`` processes already blocking on an empty queue;
   N no-op jobs enqueued with ``enqueue_many`` (500 per pipeline); jobs/s until all
   are in the finished registry.
4. RQ chain: M jobs one after another on 1 SimpleWorker, each enqueued once the
   previous one's result is in; ms per step.
5. In-process ``WorkflowEngine`` on the same two workflows, for reference.

Prints medians (min..max) and the graflow-dist/RQ ratios, Redis commands per task and
CPU per task, and writes JSON (default bench/results/latest.json; --quick writes
nothing unless --out is given). Everything runs on 127.0.0.1; every process the
benchmark starts is stopped by PID, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

# Sign graph blobs with a throw-away key instead of creating ~/.graflow-dist/secret.
# Set before graflow_dist is imported; the cluster's processes inherit it.
os.environ.setdefault("GRAFLOW_DIST_SECRET", "bench-" + secrets.token_hex(16))

import benchlib  # noqa: E402
import cloudpickle  # noqa: E402
import redis  # noqa: E402
import rq  # noqa: E402
from benchlib import (  # noqa: E402
    BENCH_DIR,
    REPO_DIR,
    RQ_BIN,
    Children,
    CountingRedis,
    Probe,
    background_rate,
    chain_workflow,
    fanout_workflow,
    tail,
    terminate_on_signals,
    uninterruptible,
    wait_until,
)
from rq import Queue  # noqa: E402

from graflow_dist import Client  # noqa: E402
from graflow_dist.embedded import RedisServer  # noqa: E402
from graflow_dist.embedded.cluster import LocalCluster  # noqa: E402
from graflow_dist.errors import RunTimeoutError  # noqa: E402

# Workers and the coordinator unpickle the graph: ship benchlib's task code by value.
cloudpickle.register_pickle_by_value(benchlib)

RQ_TP_QUEUE = "bench-tp"
RQ_CHAIN_QUEUE = "bench-chain"
RQ_ENQUEUE_CHUNK = 500
RUN_TIMEOUT_S = 300.0
WAIT_SLICE_S = 2.0  # > a default-size run, so the slicing never touches the timing
SETTLE_S = 0.05  # after a timed run, before the Redis/CPU probe closes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=None, help="default 5 (1 with --quick)")
    ap.add_argument("--fanout", type=int, default=None, help="parallel no-op tasks/jobs "
                    "(default 1000; 40 with --quick)")
    ap.add_argument("--chain", type=int, default=None, help="sequential no-op tasks/jobs "
                    "(default 200; 10 with --quick)")
    ap.add_argument("--workers", type=int, default=2, help="graflow-dist workers and RQ "
                    "SimpleWorkers for the fan-out")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, 1 repeat, no warm-up "
                    "(a smoke run; numbers are meaningless)")
    ap.add_argument("--no-engine", action="store_true", help="skip the in-process engine")
    ap.add_argument("--rq-verbose", action="store_true", help="run rq workers with their "
                    "default INFO logging instead of --quiet")
    ap.add_argument("--aof", action="store_true", help="redis-server with appendonly "
                    "everysec (as `graflow-dist up` runs it)")
    ap.add_argument("--out", default=None, help="JSON output path (default "
                    "bench/results/latest.json; none for --quick)")
    args = ap.parse_args(argv)
    for name, normal, quick in (("repeats", 5, 1), ("fanout", 1000, 40), ("chain", 200, 10)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else normal)
    if args.out is None and not args.quick:
        args.out = str(BENCH_DIR / "results" / "latest.json")
    return args


# --- measurements -------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, url: str, tmp: Path) -> None:
        self.args = args
        self.url = url
        self.tmp = tmp
        self.r = CountingRedis.from_url(url)
        self.children = Children()
        self.cluster: LocalCluster | None = None
        self.rq_tp: list[subprocess.Popen[bytes]] = []
        self.rq_chain: list[subprocess.Popen[bytes]] = []
        self.background: dict[str, float] = {}
        self.results: dict[str, list[dict[str, Any]]] = {}

    # -- set-up --

    def start_cluster(self) -> None:
        self.cluster = LocalCluster(
            self.args.workers, redis_url=self.url, data_dir=str(self.tmp / "cluster"),
            coordinator_options=["--checkpoint-dir", str(self.tmp / "checkpoints")],
        )
        self.cluster.start()
        self.gf_client = Client(redis_client=self.r)

    def start_rq_workers(self) -> None:
        logs = self.tmp / "rq"
        logs.mkdir(exist_ok=True)

        def spawn(queue: str, name: str) -> subprocess.Popen[bytes]:
            cmd = [RQ_BIN, "worker", "-u", self.url, "--worker-class", "rq.SimpleWorker",
                   "-P", str(BENCH_DIR), "-n", name, queue]
            if not self.args.rq_verbose:
                cmd.append("--quiet")
            return self.children.spawn(cmd, logs / f"{name}.log", cwd=BENCH_DIR)

        self.rq_tp = [spawn(RQ_TP_QUEUE, f"bench-tp-{i}") for i in range(self.args.workers)]
        self.rq_chain = [spawn(RQ_CHAIN_QUEUE, "bench-chain-0")]
        names = [f"bench-tp-{i}" for i in range(self.args.workers)] + ["bench-chain-0"]

        def idle() -> bool:
            for proc in self.rq_tp + self.rq_chain:
                if proc.poll() is not None:
                    raise RuntimeError(f"rq worker {proc.pid} exited early:\n"
                                       + tail(logs / f"{names[0]}.log"))
            return all(self.r.hget(f"rq:worker:{n}", "state") == b"idle" for n in names)

        wait_until(idle, 30, "rq workers to block on their (empty) queues")
        time.sleep(0.3)  # idle is set just before the blocking pop
        self.q_tp = Queue(RQ_TP_QUEUE, connection=self.r)
        self.q_chain = Queue(RQ_CHAIN_QUEUE, connection=self.r)
        self.q_tp.get_redis_server_version()  # one INFO, cached, outside timings

    def pids(self) -> dict[str, list[int]]:
        assert self.cluster is not None and self.cluster.coordinator is not None
        return {
            "gf coordinator": [self.cluster.coordinator.pid],
            "gf workers": [w.pid for w in self.cluster.workers],
            "rq workers": [p.pid for p in self.rq_tp + self.rq_chain],
        }

    def measure_background(self, seconds: float) -> None:
        with self.r.counted():
            self.background = background_rate(self.r, seconds)

    def stop(self) -> None:
        with uninterruptible():
            if self.cluster is not None:
                try:
                    self.cluster.stop()
                except Exception as exc:  # keep stopping the rest
                    print(f"warning: cluster stop: {exc}", file=sys.stderr)
            self.children.stop_all()
            self.r.close()

    # -- one measurement each --

    def _record(self, name: str, tasks: int, probe: Probe, own: Counter[str],
                **values: Any) -> dict[str, Any]:
        net = probe.net_commands(own, self.background)
        entry = {
            **values,
            "tasks": tasks,
            "commands_per_task": sum(net.values()) / tasks,
            "commands_by_name_per_task": {k: round(v / tasks, 3) for k, v in
                                          sorted(net.items(), key=lambda kv: -kv[1])},
            "cpu_ms_per_task": {k: round(v * 1e3 / tasks, 4) for k, v in probe.cpu.items()
                                if v > 0},
        }
        self.results.setdefault(name, []).append(entry)
        return entry

    def _gf_run(self, wf: Any, expected: int
                ) -> tuple[float, float, float, float, Probe, Counter[str]]:
        self.r.counts.clear()
        with Probe(self.r, self.pids()) as probe:
            t0 = time.perf_counter()
            run = self.gf_client.submit(wf)
            submitted = time.perf_counter() - t0
            with self.r.counted():
                result = self._wait(run)
            elapsed = time.perf_counter() - t0
            time.sleep(SETTLE_S)  # let end-of-run housekeeping land inside the probe
        own = Counter(self.r.counts)
        if result != expected:
            raise RuntimeError(f"graflow-dist run returned {result!r}, expected {expected}")
        info = run.info()
        server = float(info["finished_at"]) - float(info["submitted_at"])
        start = float(info["started_at"]) - float(info["submitted_at"])
        return elapsed, submitted, server, start, probe, own

    def _wait(self, run: Any) -> Any:
        """``run.wait()``, in slices long enough not to change short runs, failing fast
        if a service of the cluster died."""
        assert self.cluster is not None
        deadline = time.monotonic() + RUN_TIMEOUT_S
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

    def gf_fanout(self, wf: Any) -> dict[str, Any]:
        n = self.args.fanout
        elapsed, submitted, server, start, probe, own = self._gf_run(wf, n)
        tasks = n + 2
        return self._record("gf_fanout", tasks, probe, own, seconds=elapsed,
                            tasks_per_s=tasks / elapsed, submit_seconds=submitted,
                            start_seconds=start,
                            server_seconds=server,
                            server_tasks_per_s=tasks / server)

    def gf_chain(self, wf: Any) -> dict[str, Any]:
        n = self.args.chain
        elapsed, submitted, server, start, probe, own = self._gf_run(wf, n)
        return self._record("gf_chain", n, probe, own, seconds=elapsed,
                            submit_seconds=submitted, start_seconds=start,
                            ms_per_step=elapsed * 1e3 / n, server_ms_per_step=server * 1e3 / n)

    def rq_fanout(self) -> dict[str, Any]:
        n = self.args.fanout
        finished = f"rq:finished:{RQ_TP_QUEUE}"
        base = self.r.zcard(finished)
        self.r.counts.clear()
        with Probe(self.r, self.pids()) as probe:
            t0 = time.perf_counter()
            for start in range(0, n, RQ_ENQUEUE_CHUNK):
                with self.r.pipeline(transaction=True) as pipe:
                    self.q_tp.enqueue_many(
                        [Queue.prepare_data("rq_tasks.noop", description="rq_tasks.noop")
                         for _ in range(min(RQ_ENQUEUE_CHUNK, n - start))], pipeline=pipe)
                    pipe.execute()
            enqueued = time.perf_counter() - t0
            deadline = time.monotonic() + RUN_TIMEOUT_S
            with self.r.counted():
                while self.r.zcard(finished) - base < n:
                    if time.monotonic() > deadline:
                        raise RuntimeError("rq fan-out did not finish")
                    time.sleep(0.002)
            elapsed = time.perf_counter() - t0
            time.sleep(SETTLE_S)
        own = Counter(self.r.counts)
        return self._record("rq_fanout", n, probe, own, seconds=elapsed,
                            jobs_per_s=n / elapsed, enqueue_seconds=enqueued)

    def rq_chain_run(self, warmup: int = 5) -> dict[str, Any]:
        n = self.args.chain
        for _ in range(warmup):
            self._rq_step()
        self.r.counts.clear()
        with Probe(self.r, self.pids()) as probe:
            t0 = time.perf_counter()
            for _ in range(n):
                self._rq_step()
            elapsed = time.perf_counter() - t0
        own = Counter(self.r.counts)
        return self._record("rq_chain", n, probe, own, seconds=elapsed,
                            ms_per_step=elapsed * 1e3 / n)

    def _rq_step(self) -> None:
        job = self.q_chain.enqueue("rq_tasks.noop", description="rq_tasks.noop")
        with self.r.counted():
            result = job.latest_result(timeout=10)  # XREAD BLOCK on the result stream
        if result is None or result.type != result.Type.SUCCESSFUL:
            raise RuntimeError(f"rq chain job {job.id} did not succeed: {result!r}")

    def engine(self, fan: Any, chn: Any) -> None:
        t0 = time.perf_counter()
        if fan.execute() != self.args.fanout:
            raise RuntimeError("engine fan-out returned the wrong result")
        fan_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        if chn.execute() != self.args.chain:
            raise RuntimeError("engine chain returned the wrong result")
        chain_s = time.perf_counter() - t0
        self.results.setdefault("engine_fanout", []).append(
            {"seconds": fan_s, "tasks_per_s": (self.args.fanout + 2) / fan_s})
        self.results.setdefault("engine_chain", []).append(
            {"seconds": chain_s, "ms_per_step": chain_s * 1e3 / self.args.chain})


# --- reporting ------------------------------------------------------------------------


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def fmt(s: dict[str, float], digits: int = 0) -> str:
    return f"{s['median']:>9,.{digits}f}  ({s['min']:,.{digits}f} .. {s['max']:,.{digits}f})"


def merged_counts(entries: list[dict[str, Any]], key: str) -> dict[str, float]:
    names = {k for e in entries for k in e[key]}
    return {k: statistics.median(e[key].get(k, 0.0) for e in entries) for k in names}


def report(b: Bench, env: dict[str, Any]) -> dict[str, Any]:
    a, res = b.args, b.results
    out: dict[str, Any] = {"environment": env, "config": {
        "repeats": a.repeats, "fanout": a.fanout, "chain": a.chain, "workers": a.workers,
        "quick": a.quick, "aof": a.aof, "rq_quiet": not a.rq_verbose}, "raw": res}
    s = {
        "gf_fanout_tasks_per_s": summary([e["tasks_per_s"] for e in res["gf_fanout"]]),
        "gf_fanout_server_tasks_per_s": summary(
            [e["server_tasks_per_s"] for e in res["gf_fanout"]]),
        "gf_fanout_submit_ms": summary([e["submit_seconds"] * 1e3 for e in res["gf_fanout"]]),
        "gf_chain_submit_ms": summary([e["submit_seconds"] * 1e3 for e in res["gf_chain"]]),
        "gf_fanout_start_ms": summary([e["start_seconds"] * 1e3 for e in res["gf_fanout"]]),
        "gf_chain_start_ms": summary([e["start_seconds"] * 1e3 for e in res["gf_chain"]]),
        "rq_fanout_jobs_per_s": summary([e["jobs_per_s"] for e in res["rq_fanout"]]),
        "gf_chain_ms_per_step": summary([e["ms_per_step"] for e in res["gf_chain"]]),
        "gf_chain_server_ms_per_step": summary(
            [e["server_ms_per_step"] for e in res["gf_chain"]]),
        "rq_chain_ms_per_step": summary([e["ms_per_step"] for e in res["rq_chain"]]),
    }
    if "engine_fanout" in res:
        s["engine_fanout_tasks_per_s"] = summary([e["tasks_per_s"] for e in res["engine_fanout"]])
        s["engine_chain_ms_per_step"] = summary([e["ms_per_step"] for e in res["engine_chain"]])
    paired_tp = [g["tasks_per_s"] / r["jobs_per_s"]
                 for g, r in zip(res["gf_fanout"], res["rq_fanout"], strict=True)]
    paired_lat = [g["ms_per_step"] / r["ms_per_step"]
                  for g, r in zip(res["gf_chain"], res["rq_chain"], strict=True)]
    ratios = {
        "throughput_gf_over_rq": s["gf_fanout_tasks_per_s"]["median"]
        / s["rq_fanout_jobs_per_s"]["median"],
        "throughput_paired": summary(paired_tp),
        "latency_gf_over_rq": s["gf_chain_ms_per_step"]["median"]
        / s["rq_chain_ms_per_step"]["median"],
        "latency_paired": summary(paired_lat),
    }
    cmds = {name: {"per_task": statistics.median(e["commands_per_task"] for e in res[name]),
                   "by_name": merged_counts(res[name], "commands_by_name_per_task")}
            for name in ("gf_fanout", "rq_fanout", "gf_chain", "rq_chain")}
    cpu = {name: merged_counts(res[name], "cpu_ms_per_task")
           for name in ("gf_fanout", "rq_fanout", "gf_chain", "rq_chain")}
    out.update(summary=s, ratios=ratios, commands=cmds, cpu_ms_per_task=cpu)

    n, m = a.fanout, a.chain
    print()
    print(f"graflow-dist vs RQ on one redis-server ({env['redis_server']}), "
          f"{env['cpus']} CPUs, {a.repeats} repeat(s); median (min .. max)")
    print(f"  fan-out: 1 + {n} + 1 no-op tasks, {a.workers} graflow-dist workers + "
          f"1 coordinator | {n} RQ jobs, {a.workers} SimpleWorkers")
    print(f"    graflow-dist       tasks/s {fmt(s['gf_fanout_tasks_per_s'])}"
          f"   [server-side {s['gf_fanout_server_tasks_per_s']['median']:,.0f}; "
          f"submit() {s['gf_fanout_submit_ms']['median']:.0f} ms; "
          f"run start {s['gf_fanout_start_ms']['median']:.0f} ms]")
    print(f"    RQ                  jobs/s {fmt(s['rq_fanout_jobs_per_s'])}")
    if "engine_fanout_tasks_per_s" in s:
        print(f"    in-process engine  tasks/s {fmt(s['engine_fanout_tasks_per_s'])}")
    print(f"  chain: {m} sequential no-op tasks | {m} RQ jobs, 1 SimpleWorker")
    print(f"    graflow-dist       ms/step {fmt(s['gf_chain_ms_per_step'], 2)}"
          f"   [server-side {s['gf_chain_server_ms_per_step']['median']:.2f}; "
          f"submit() {s['gf_chain_submit_ms']['median']:.0f} ms; "
          f"run start {s['gf_chain_start_ms']['median']:.0f} ms]")
    print(f"    RQ                 ms/step {fmt(s['rq_chain_ms_per_step'], 2)}")
    if "engine_chain_ms_per_step" in s:
        print(f"    in-process engine  ms/step {fmt(s['engine_chain_ms_per_step'], 3)}")
    print("  Redis commands per task (incl. commands inside Lua; bench polling and idle "
          "traffic subtracted)")
    for name, label in (("gf_fanout", "graflow-dist fan-out"), ("rq_fanout", "RQ fan-out"),
                        ("gf_chain", "graflow-dist chain"), ("rq_chain", "RQ chain")):
        top = sorted(cmds[name]["by_name"].items(), key=lambda kv: -kv[1])[:6]
        print(f"    {label:<22} {cmds[name]['per_task']:6.1f}   "
              + ", ".join(f"{k} {v:.2f}" for k, v in top))
    print("  CPU ms per task")
    for name, label in (("gf_fanout", "graflow-dist fan-out"), ("rq_fanout", "RQ fan-out"),
                        ("gf_chain", "graflow-dist chain"), ("rq_chain", "RQ chain")):
        print(f"    {label:<22} " + ", ".join(
            f"{k} {v:.3f}" for k, v in sorted(cpu[name].items()) if v >= 0.0005))
    tp, lat = ratios["throughput_paired"], ratios["latency_paired"]
    print(f"RATIO throughput graflow-dist/RQ (fan-out tasks/s): "
          f"{ratios['throughput_gf_over_rq']:.2f}x  (paired {tp['min']:.2f} .. {tp['max']:.2f})")
    print(f"RATIO latency graflow-dist/RQ (chain ms/step): "
          f"{ratios['latency_gf_over_rq']:.2f}x  (paired {lat['min']:.2f} .. {lat['max']:.2f})"
          "  [< 1 is better for graflow-dist]")
    return out


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
        "redis_server": server.get("redis_version"), "rq": rq.__version__,
        "redis_py": redis.__version__, "platform": platform.platform(),
        "loadavg_start": os.getloadavg(),
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
            t = time.perf_counter()
            bench.start_cluster()
            bench.start_rq_workers()
            print(f"started redis-server pid {server.pid} on {server.url}, graflow-dist "
                  f"cluster and {args.workers + 1} rq workers in "
                  f"{time.perf_counter() - t:.1f} s", flush=True)
            fan, chn = fanout_workflow(args.fanout), chain_workflow(args.chain)
            if not args.quick:  # warm-up: imports, graph caches, rq job paths
                bench.gf_fanout(fan)
                bench.gf_chain(chn)
                bench.rq_fanout()
                bench.rq_chain_run()
                bench.results.clear()
            bench.measure_background(0.5 if args.quick else 2.0)
            for i in range(args.repeats):
                g, r = bench.gf_fanout(fan), bench.rq_fanout()
                gc, rc = bench.gf_chain(chn), bench.rq_chain_run()
                if not args.no_engine:
                    bench.engine(fan, chn)
                print(f"repeat {i + 1}/{args.repeats}: fan-out gf {g['tasks_per_s']:,.0f} "
                      f"tasks/s, rq {r['jobs_per_s']:,.0f} jobs/s | chain gf "
                      f"{gc['ms_per_step']:.2f} ms/step, rq {rc['ms_per_step']:.2f} ms/step",
                      flush=True)
            out = report(bench, env)
        except Exception:
            for log in sorted(tmp.glob("**/*.log")):
                print(f"--- tail of {log.relative_to(tmp)} ---\n{tail(log, 1500)}",
                      file=sys.stderr)
            raise
        finally:
            with uninterruptible():
                if bench is not None:
                    bench.stop()
                server.close()
    if args.out:
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
