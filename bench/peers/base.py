"""The driver side of a system under benchmark: one adapter per system, served over
JSON lines on stdin/stdout by `serve()`.

A driver process (``python -m peers.<name>_adapter --redis-url URL --workers N --logs DIR``,
run with ``bench/`` as the working directory) starts the system's services as child
processes, each leading its own process group, prints one ready line, then answers
requests until stdin closes or it gets SIGTERM/SIGINT, and always stops its services
by PID (their process groups) on the way out. Standard library only: the peers' driver
runs in the peers' virtualenv, graflow-dist's and RQ's in the repository's.

Requests: ``{"op": "run", "workload": "fanout", "size": 1000}``; replies: the
workload's measurement (a dict with at least ``seconds`` and ``tasks``) or
``{"error": "..."}``. Every workload of every system uses no-op tasks.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

BENCH_DIR = Path(__file__).resolve().parents[1]
DEFAULT_STOP_TIMEOUT_S = 10.0
URL_ENV = "BENCH_REDIS_URL"  # set for drivers and services: modules that workers import read it
DEFAULT_RESULT_TIMEOUT_S = 600.0
SMALL_RUN_WIDTH = 10  # the small-runs workflow: head, 10-way fan-out, join (12 tasks)

Measurement = dict[str, Any]


class ServiceGroup:
    """Services of one system: each a child process leading its own process group,
    stopped by PID (SIGTERM to the group, SIGKILL after a grace period)."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: dict[str, list[subprocess.Popen[bytes]]] = {}

    def spawn(self, role: str, cmd: list[str], log_name: str,
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with open(self.logs / log_name, "ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=BENCH_DIR,
                                    env={**os.environ, **(env or {})},
                                    start_new_session=True)
        self.procs.setdefault(role, []).append(proc)
        return proc

    def check_alive(self) -> None:
        for role, procs in self.procs.items():
            for proc in procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{role} pid {proc.pid} exited with {proc.returncode}; "
                                       f"see the logs in {self.logs}")

    def pids(self) -> dict[str, list[int]]:
        """Role -> PIDs of the leaders and of every process they forked."""
        return {role: [pid for p in procs for pid in [p.pid, *descendants(p.pid)]]
                for role, procs in self.procs.items()}

    def stop(self, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> None:
        procs = [p for group in self.procs.values() for p in group]
        for proc in procs:
            _killpg(proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _killpg(proc, signal.SIGKILL)  # also forked children that outlived their leader
            proc.wait()
        self.procs.clear()


def _killpg(proc: subprocess.Popen[bytes], sig: int) -> None:
    # The peers' own virtualenv has no graflow_dist (and so no
    # graflow_dist.embedded.processes): this small copy signals the groups we started.
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def descendants(pid: int) -> list[int]:
    """PIDs of every live descendant of ``pid`` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def versions(*packages: str) -> dict[str, str]:
    out = {}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def wait_for(pred: Callable[[], bool], timeout_s: float, what: str,
             services: ServiceGroup | None = None, poll_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if services is not None:
            services.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(poll_s)


def measured(seconds: float, tasks: int, **extra: Any) -> Measurement:
    return {"seconds": seconds, "tasks": tasks, **extra}


class Adapter:
    """One system under benchmark. Subclasses set ``name``, implement `start`, `stop`,
    `versions` and a ``run_<workload>(size)`` method per workload they support."""

    name = ""

    def __init__(self, redis_url: str, workers: int, logs: Path) -> None:
        self.redis_url = redis_url
        self.workers = workers
        self.logs = logs
        self.services = ServiceGroup(logs)

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.services.stop()

    def versions(self) -> dict[str, str]:
        raise NotImplementedError

    def pids(self) -> dict[str, list[int]]:
        """Role -> PIDs whose CPU and memory the host samples (the driver itself is
        reported by the host as the client)."""
        return self.services.pids()

    def workloads(self) -> list[str]:
        return sorted(n[len("run_"):] for n in dir(self) if n.startswith("run_"))

    def run(self, workload: str, size: int) -> Measurement:
        method = getattr(self, f"run_{workload}", None)
        if method is None:
            raise ValueError(f"{self.name} has no workload {workload!r} "
                             f"(it has: {', '.join(self.workloads())})")
        self.services.check_alive()
        return method(size)


def serve(adapter_cls: type[Adapter], argv: list[str] | None = None) -> int:
    """Run ``adapter_cls`` as a driver process (see the module docstring)."""
    ap = argparse.ArgumentParser(description=f"benchmark driver for {adapter_cls.name}")
    ap.add_argument("--redis-url", required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--logs", required=True)
    args = ap.parse_args(argv)
    # Replies go to a private copy of stdout; anything a library prints goes to stderr.
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def _exit(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, _exit)
    logs = Path(args.logs)
    logs.mkdir(parents=True, exist_ok=True)
    adapter = adapter_cls(args.redis_url, args.workers, logs)
    try:
        adapter.start()
        _reply(replies, {"ready": True, "pid": os.getpid(), "pids": adapter.pids(),
                         "versions": adapter.versions(), "workloads": adapter.workloads()})
        for line in sys.stdin:
            request = json.loads(line)
            if request.get("op") == "stop":
                break
            try:
                reply = adapter.run(request["workload"], int(request["size"]))
            except Exception as exc:  # reported to the host, which decides
                traceback.print_exc()
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            _reply(replies, reply)
    except Exception as exc:
        traceback.print_exc()
        _reply(replies, {"error": f"{adapter_cls.name} driver failed: "
                                  f"{type(exc).__name__}: {exc}"})
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        adapter.stop()
    return 0


def _reply(stream: TextIO, payload: dict[str, Any]) -> None:
    stream.write(json.dumps(payload) + "\n")
    stream.flush()
