"""LocalCluster: an embedded redis-server, a coordinator and N workers on this host."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import redis

from graflow_dist.broker import Broker
from graflow_dist.broker.keys import Keyspace
from graflow_dist.embedded.processes import ServiceProcess
from graflow_dist.embedded.redis_server import RedisServer

DEFAULT_READY_TIMEOUT_S = 20.0


class LocalCluster:
    """Start with `start()`, stop with `stop()` (or use it as a context manager).

    Parameters
    ----------
    workers:
        Worker processes to start.
    redis_url:
        Use this Redis instead of starting an embedded one.
    data_dir:
        Where the embedded Redis keeps its append-only file and the services their logs
        (default: a temporary directory).
    worker_options, coordinator_options:
        Extra CLI options for the services (e.g. ``["--lease-s", "3"]``).
    """

    def __init__(self, workers: int = 2, *, redis_url: str | None = None,
                 data_dir: str | None = None, worker_options: list[str] | None = None,
                 coordinator_options: list[str] | None = None, cwd: str | None = None) -> None:
        self.n_workers = workers
        self._tmp = None if data_dir else tempfile.TemporaryDirectory(prefix="graflow-up-")
        self.data_dir = Path(data_dir or self._tmp.name)  # type: ignore[union-attr]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.redis: RedisServer | None = None
        self._url = redis_url
        self.worker_options = list(worker_options or [])
        self.coordinator_options = list(coordinator_options or [])
        self.cwd = cwd
        self.coordinator: ServiceProcess | None = None
        self.workers: list[ServiceProcess] = []

    @property
    def url(self) -> str:
        assert self._url is not None, "cluster not started"
        return self._url

    def start(self) -> LocalCluster:
        if self._url is None:
            self.redis = RedisServer(appendonly=True, dir=str(self.data_dir / "redis")).start()
            self._url = self.redis.url
        self.coordinator = ServiceProcess(
            "coordinator", self.url, self.coordinator_options,
            log_path=self.data_dir / "coordinator.log", cwd=self.cwd).start()
        for _ in range(self.n_workers):
            self.add_worker()
        self.wait_ready()
        return self

    def add_worker(self) -> ServiceProcess:
        index = len(self.workers)
        worker = ServiceProcess("worker", self.url, self.worker_options,
                                log_path=self.data_dir / f"worker-{index}.log",
                                cwd=self.cwd).start()
        self.workers.append(worker)
        return worker

    def wait_ready(self, timeout_s: float = DEFAULT_READY_TIMEOUT_S) -> None:
        """Until the coordinator holds the lease and every running worker has
        registered; services stopped or killed on purpose are not waited for."""
        broker = Broker(redis.Redis.from_url(self.url), Keyspace.from_env())
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                live = [w for w in self.workers if w.alive()]
                if broker.leader.holder() and len(broker.workers.names()) >= len(live):
                    return
                for service in [self.coordinator, *self.workers]:
                    if service is not None and not (service.alive()
                                                    or service.stop_requested):
                        raise RuntimeError(f"{service.kind} exited early; see {service.log_path}")
                time.sleep(0.05)
            raise RuntimeError(f"cluster not ready after {timeout_s} s; logs in {self.data_dir}")
        finally:
            broker.close()

    def stop(self) -> None:
        for worker in self.workers:
            worker.signal_group(15)
        for service in [*self.workers, self.coordinator]:
            if service is not None:
                service.stop()
        if self.redis is not None:
            self.redis.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
