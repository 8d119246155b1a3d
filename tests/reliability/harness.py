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
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import cloudpickle
import redis

from graflow_dist.broker.keys import Keyspace
from graflow_dist.embedded.processes import ServiceProcess
from graflow_dist.embedded.redis_server import RedisServer

cloudpickle.register_pickle_by_value(sys.modules[__name__])

DEFAULT_WAIT_S = 30.0
_POLL_S = 0.02
T = TypeVar("T")


# --- what tasks write ------------------------------------------------------------------


def record(ledger_dir: str, ctx: Any, event: str, **extra: Any) -> None:
    """Append one ledger line for the running task (``ctx``: its TaskExecutionContext)."""
    line = json.dumps({
        "ev": event, "s": ctx.session_id, "t": ctx.task_id, "k": ctx.spec.token,
        "c": ctx.spec.cycle, "p": os.getpid(), "ts": time.time(), **extra,
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
    pid: int
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
                    known = {"ev", "s", "t", "k", "c", "p", "ts"}
                    out.append(Entry(d["ev"], d["s"], d["t"], d["k"], d["c"], d["p"], d["ts"],
                                     {k: v for k, v in d.items() if k not in known}))
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


def wait_run(run: Any, timeout_s: float = 60.0) -> Any:
    """`run.wait()`, which itself rides out Redis outages (the tests depend on that)."""
    return run.wait(timeout=timeout_s)


# --- the cluster -----------------------------------------------------------------------


def pid_of(name: str) -> int:
    """The pid inside a worker name ``gf-HOST-PID-xxxx`` or coordinator id
    ``coord-HOST-PID-xxxxxx``."""
    return int(name.rsplit("-", 2)[-2])


class FaultCluster:
    """Redis (AOF), coordinators and workers on this host, all ours to kill.

    Parameters
    ----------
    data_dir:
        Redis data and one log file per service process.
    worker_options, coordinator_options:
        CLI options of the services.
    """

    def __init__(self, data_dir: Path, *, worker_options: list[str],
                 coordinator_options: list[str], env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.worker_options = worker_options
        self.coordinator_options = coordinator_options
        self.env = env or {}
        self.redis = RedisServer(appendonly=True, dir=data_dir / "redis")
        self.keyspace = Keyspace.from_env()
        self.workers: list[ServiceProcess] = []
        self.coordinators: list[ServiceProcess] = []
        self._client: redis.Redis | None = None
        self._serial = 0

    @property
    def url(self) -> str:
        return self.redis.url

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis.from_url(self.url, socket_timeout=5)
        return self._client

    def start(self, workers: int, coordinators: int = 1) -> FaultCluster:
        self.redis.start()
        for _ in range(coordinators):
            self.add_coordinator()
        for _ in range(workers):
            self.add_worker()
        self.wait_ready()
        return self

    def _spawn(self, kind: str, options: list[str], extra: list[str] | None = None
               ) -> ServiceProcess:
        self._serial += 1
        log = self.data_dir / f"{kind}-{self._serial}.log"
        return ServiceProcess(kind, self.url, [*options, *(extra or [])], env=self.env,
                              log_path=log).start()

    def add_worker(self, extra: list[str] | None = None) -> ServiceProcess:
        worker = self._spawn("worker", self.worker_options, extra)
        self.workers.append(worker)
        return worker

    def add_coordinator(self) -> ServiceProcess:
        coord = self._spawn("coordinator", self.coordinator_options)
        self.coordinators.append(coord)
        return coord

    def live_workers(self) -> list[ServiceProcess]:
        return [w for w in self.workers if w.alive()]

    def live_coordinators(self) -> list[ServiceProcess]:
        return [c for c in self.coordinators if c.alive()]

    def registered_workers(self) -> set[int]:
        """Pids of workers that registered (their heartbeat zset entry)."""
        return {pid_of(n.decode()) for n in self.client.zrange(self.keyspace.workers, 0, -1)}

    def wait_ready(self, timeout_s: float = DEFAULT_WAIT_S) -> None:
        """Until a coordinator leads and every live worker has registered."""

        def ready() -> bool:
            for service in [*self.coordinators, *self.workers]:
                if service.proc is not None and service.proc.poll() not in (None, 0, -9, -15):
                    raise AssertionError(f"{service.kind} {service.pid} exited with "
                                         f"{service.proc.returncode}; see {service.log_path}")
            live = {w.pid for w in self.live_workers()}
            return self.leader() is not None and live <= self.registered_workers()

        wait_for(ready, "the cluster to be ready", timeout_s)

    def leader(self) -> ServiceProcess | None:
        """The coordinator process holding the leader lease, if any."""
        raw = self.client.get(self.keyspace.leader)
        if raw is None:
            return None
        pid = pid_of(raw.decode())
        return next((c for c in self.coordinators if c.pid == pid), None)

    def worker_by_pid(self, pid: int) -> ServiceProcess:
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

    def stop(self) -> None:
        for service in [*self.workers, *self.coordinators]:
            service.signal_group(signal.SIGCONT)
            service.signal_group(signal.SIGTERM)
        for service in [*self.workers, *self.coordinators]:
            with suppress(Exception):
                service.stop(timeout_s=10)
        if self._client is not None:
            self._client.close()
        self.redis.stop()


class WorkerSupervisor:
    """Replaces workers that exit (like ``graflow-dist worker --concurrency N`` does) while
    the ``with`` block runs: for tests whose tasks kill their own worker."""

    def __init__(self, cluster: FaultCluster) -> None:
        self.cluster = cluster
        self.replaced = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            for worker in list(self.cluster.workers):
                if worker.proc is not None and worker.proc.poll() is not None \
                        and not getattr(worker, "replaced", False):
                    worker.replaced = True  # type: ignore[attr-defined]
                    self.cluster.add_worker()
                    self.replaced += 1

    def __enter__(self) -> WorkerSupervisor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
