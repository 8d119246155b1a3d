"""Fault-injection harness shared by tests/reliability and tests/chaos.

`FaultCluster` owns a redis-server with AOF, coordinator and worker processes (each in
its own process group, so a kill takes the whole simulated node), and knows which of
them leads. `Ledger` is what tasks write: one JSON line per task start and end, in a
file per worker process opened with O_APPEND, so a SIGKILL loses nothing written.

Tasks call `record` (shipped to workers by value with this module).
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import cloudpickle
import redis
from prometheus_client.parser import text_string_to_metric_families

from graflow_dist.embedded.cluster import LocalCluster
from graflow_dist.embedded.processes import ServiceProcess
from graflow_dist.embedded.redis_server import RedisServer
from reliability.loopback_proxy import LoopbackProxy

cloudpickle.register_pickle_by_value(sys.modules[__name__])

DEFAULT_WAIT_S = 30.0
_POLL_S = 0.02
T = TypeVar("T")


# --- what tasks write ------------------------------------------------------------------


def record(ledger_dir: str, ctx: Any, event: str, **extra: Any) -> None:
    """Append one ledger line for the running task (``ctx``: its TaskExecutionContext).
    ``p`` is the executor process running it, ``w`` its worker (the supervisor, the
    process a test starts, signals and kills)."""
    line = json.dumps({
        "ev": event, "s": ctx.session_id, "t": ctx.task_id, "k": ctx.spec.token,
        "c": ctx.spec.cycle, "p": os.getpid(), "w": os.getppid(), "ts": time.time(), **extra,
    })
    fd = os.open(os.path.join(ledger_dir, f"{os.getpid()}.jsonl"),
                 os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Entry:
    event: str
    session: str
    task: str
    token: str
    cycle: int
    pid: int  # the executor process that ran the task
    worker_pid: int  # its worker service (supervisor)
    ts: float
    extra: dict[str, Any]


class Ledger:
    """Reads what tasks recorded under ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)

    @property
    def path(self) -> str:
        return str(self.dir)

    def entries(self, event: str | None = None, task: str | None = None) -> list[Entry]:
        out = []
        for file in sorted(self.dir.glob("*.jsonl")):
            for line in file.read_text().splitlines():
                try:
                    d = json.loads(line)
                except ValueError:
                    continue  # a line cut by a SIGKILL mid-write (never seen, but cheap)
                if (event is None or d["ev"] == event) and (task is None or d["t"] == task):
                    known = {"ev", "s", "t", "k", "c", "p", "w", "ts"}
                    out.append(Entry(d["ev"], d["s"], d["t"], d["k"], d["c"], d["p"], d["w"],
                                     d["ts"], {k: v for k, v in d.items() if k not in known}))
        return sorted(out, key=lambda e: e.ts)


# --- waiting on events ------------------------------------------------------------------


def recorded_step(ledger_dir: str, name: str, seconds: float, value: int) -> Any:
    """A task that records its start and end in the ledger, sleeps, returns ``value``."""
    from graflow_dist import task

    @task(name, inject_context=True)
    def run(ctx: Any) -> int:
        record(ledger_dir, ctx, "start")
        time.sleep(seconds)
        record(ledger_dir, ctx, "end")
        return value

    return run


def wait_for(predicate: Callable[[], T | None], what: str, timeout_s: float = DEFAULT_WAIT_S,
             poll_s: float = _POLL_S) -> T:
    """Poll ``predicate`` until it returns something truthy; Redis being down meanwhile
    counts as "not yet"."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = predicate()
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, OSError):
            value = None
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(poll_s)


def metric(port: int, name: str) -> float:
    """A service's counter ``name`` (summed over labels) from its ``/metrics``; 0 if it
    has none yet."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples if sample.name == name)


def wait_run(run: Any, timeout_s: float = 60.0) -> Any:
    """`run.wait()`, which itself rides out Redis outages (the tests depend on that)."""
    return run.wait(timeout=timeout_s)


# --- the cluster -----------------------------------------------------------------------


class FaultCluster(LocalCluster):
    """A `LocalCluster` with Redis (AOF) of its own, all ours to kill, plus what the
    fault tests read: the services' JSON logs.

    Parameters
    ----------
    data_dir:
        Redis data and one log file per service process.
    worker_options, coordinator_options:
        CLI options of the services.
    proxied:
        The services reach Redis through a `LoopbackProxy` (``proxy``), which cuts
        their connections on demand; the test's own client goes to Redis directly.
    latency_s:
        With ``proxied``, how long the proxy holds each reply (a distant Redis).
    """

    def __init__(self, data_dir: Path, *, worker_options: list[str],
                 coordinator_options: list[str], env: dict[str, str] | None = None,
                 proxied: bool = False, latency_s: float = 0.0) -> None:
        super().__init__(0, coordinators=0, data_dir=data_dir, worker_options=worker_options,
                         coordinator_options=coordinator_options, env=env)
        self.redis = RedisServer(appendonly=True, dir=data_dir / "redis")
        self.proxied = proxied
        self.latency_s = latency_s
        self.proxy: LoopbackProxy | None = None

    def start(self, workers: int, coordinators: int = 1) -> FaultCluster:  # type: ignore[override]
        self.n_workers, self.n_coordinators = workers, coordinators
        assert self.redis is not None
        self._url = self.redis.start().url
        if self.proxied:
            self.proxy = LoopbackProxy(self.redis.port, latency_s=self.latency_s)
        super().start()
        return self

    @property
    def service_url(self) -> str:
        return self.url if self.proxy is None else self.proxy.url()

    def stop(self) -> None:
        super().stop()
        if self.proxy is not None:
            self.proxy.close()

    def wait_ready(self, timeout_s: float = DEFAULT_WAIT_S) -> None:
        # Redis may be down in the middle of a fault test: keep trying until the timeout.
        wait_for(lambda: self._ready_now(timeout_s), "the cluster to be ready", timeout_s)

    def _ready_now(self, timeout_s: float) -> bool:
        try:
            super().wait_ready(timeout_s=0.0)
        except RuntimeError as exc:
            if "exited early" in str(exc):
                raise AssertionError(str(exc)) from None
            return False
        return True

    def worker_by_pid(self, pid: int) -> ServiceProcess:
        """The worker service with this pid (a ledger entry's ``worker_pid``)."""
        return next(w for w in self.workers if w.pid == pid)

    def logs(self, kind: str = "") -> Iterator[tuple[Path, dict[str, Any]]]:
        """Every JSON log record of the services (``kind``: "worker"/"coordinator")."""
        for path in sorted(self.data_dir.glob(f"{kind}*.log")):
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith("{"):
                    with suppress(ValueError):
                        yield path, json.loads(line)

    def log_text(self, kind: str = "") -> str:
        return "\n".join(p.read_text(errors="replace")
                         for p in sorted(self.data_dir.glob(f"{kind}*.log")))

