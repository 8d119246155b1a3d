"""LocalCluster: a redis-server, coordinators and workers on this host, each service a
child process in its own process group (so a test can kill a whole "node" by PID).

`graflow-dist up`, the tests and the benchmarks all start their clusters with it.
"""

from __future__ import annotations

import os
import secrets
import socket
import tempfile
import time
from pathlib import Path

import redis

from graflow_dist.broker import Broker
from graflow_dist.broker.keys import Keyspace
from graflow_dist.embedded.processes import DEFAULT_STOP_TIMEOUT_S, ServiceProcess
from graflow_dist.embedded.redis_server import RedisServer, free_port
from graflow_dist.web.server import console_url

DEFAULT_READY_TIMEOUT_S = 20.0
UI_HOST = "127.0.0.1"
UI_STOP_TIMEOUT_S = 10.0
REDIS_PASSWORD_BYTES = 24
_POLL_S = 0.02


class LocalCluster:
    """Start with `start()`, stop with `stop()` (or use it as a context manager).

    Parameters
    ----------
    workers:
        Worker processes to start.
    coordinators:
        Coordinator processes (one leads, the others stand by).
    redis_url:
        Use this Redis instead of starting an embedded one (which gets a random
        password: see `url`).
    data_dir:
        Where the embedded Redis keeps its append-only file and the services their logs
        (default: a temporary directory).
    worker_options, coordinator_options:
        Extra CLI options for the services (e.g. ``["--lease-s", "3"]``).
    env:
        Extra environment of the services.
    ui_port:
        Also serve the web console (``graflow-dist ui``) on this loopback port (0: a
        free one); None: no console.
    ui_options:
        Extra CLI options of the console (e.g. ``["--poll-s", "0.2"]``).
    """

    def __init__(self, workers: int = 2, *, coordinators: int = 1,
                 redis_url: str | None = None, data_dir: str | os.PathLike[str] | None = None,
                 worker_options: list[str] | None = None,
                 coordinator_options: list[str] | None = None, cwd: str | None = None,
                 env: dict[str, str] | None = None, ui_port: int | None = None,
                 ui_options: list[str] | None = None) -> None:
        self.n_workers = workers
        self.n_coordinators = coordinators
        self._tmp = None if data_dir else tempfile.TemporaryDirectory(prefix="graflow-up-")
        self.data_dir = Path(data_dir or self._tmp.name)  # type: ignore[union-attr]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.redis: RedisServer | None = None
        self._url = redis_url
        self.worker_options = list(worker_options or [])
        self.coordinator_options = list(coordinator_options or [])
        self.cwd = cwd
        self.env = dict(env or {})
        self.keyspace = Keyspace.from_env()
        self.coordinators: list[ServiceProcess] = []
        self.workers: list[ServiceProcess] = []
        self._client: redis.Redis | None = None
        self._serial = 0
        self.ui_port = ui_port
        self.ui_options = list(ui_options or [])
        self.ui: ServiceProcess | None = None

    @property
    def url(self) -> str:
        assert self._url is not None, "cluster not started"
        return self._url

    @property
    def coordinator(self) -> ServiceProcess | None:
        """The first coordinator started."""
        return self.coordinators[0] if self.coordinators else None

    @property
    def client(self) -> redis.Redis:
        """A client of the cluster's Redis (for tests and tools)."""
        if self._client is None:
            self._client = redis.Redis.from_url(self.url, socket_timeout=5)
        return self._client

    @property
    def broker(self) -> Broker:
        return Broker(self.client, self.keyspace)

    def start(self) -> LocalCluster:
        if self._url is None:
            # A random password: the server listens on loopback, but any local user
            # could reach it otherwise. It travels in the URL (printed for the user,
            # given to the services in their environment), never in argv or logs.
            self.redis = RedisServer(password=secrets.token_urlsafe(REDIS_PASSWORD_BYTES),
                                     appendonly=True, dir=str(self.data_dir / "redis")).start()
            self._url = self.redis.url
        for _ in range(self.n_coordinators):
            self.add_coordinator()
        for _ in range(self.n_workers):
            self.add_worker()
        if self.ui_port is not None:
            self.ui_port = self.ui_port or free_port()
            self.ui = self._spawn("ui", ["--host", UI_HOST, "--port", str(self.ui_port),
                                         *self.ui_options])
        self.wait_ready()
        return self

    @property
    def ui_url(self) -> str:
        """The web console's URL (with ``ui_port`` set)."""
        assert self.ui_port, "cluster started without the web console"
        return console_url(UI_HOST, self.ui_port)

    @property
    def service_url(self) -> str:
        """The Redis URL the services are given (`url`; a test may put a proxy there)."""
        return self.url

    def _spawn(self, kind: str, options: list[str]) -> ServiceProcess:
        self._serial += 1
        return ServiceProcess(kind, self.service_url, options, env=self.env, cwd=self.cwd,
                              log_path=self.data_dir / f"{kind}-{self._serial}.log").start()

    def add_worker(self, extra: list[str] | None = None) -> ServiceProcess:
        worker = self._spawn("worker", [*self.worker_options, *(extra or [])])
        self.workers.append(worker)
        return worker

    def add_coordinator(self, extra: list[str] | None = None) -> ServiceProcess:
        coordinator = self._spawn("coordinator", [*self.coordinator_options, *(extra or [])])
        self.coordinators.append(coordinator)
        return coordinator

    def live_workers(self) -> list[ServiceProcess]:
        return [w for w in self.workers if w.alive()]

    def live_coordinators(self) -> list[ServiceProcess]:
        return [c for c in self.coordinators if c.alive()]

    def registered_worker_pids(self) -> set[int]:
        """Pids of the workers registered in Redis (their names carry their pid)."""
        return {pid_in_name(n) for n in self.broker.workers.names()}

    def leader(self) -> ServiceProcess | None:
        """The coordinator process holding the leader lease, if any."""
        holder = self.broker.leader.holder()
        if holder is None:
            return None
        pid = pid_in_name(holder)
        return next((c for c in self.coordinators if c.pid == pid), None)

    def wait_ready(self, timeout_s: float = DEFAULT_READY_TIMEOUT_S) -> None:
        """Until a coordinator leads and every running worker has registered; services
        stopped or killed on purpose are not waited for, one that exited on its own
        fails at once (see its log)."""
        deadline = time.monotonic() + timeout_s
        while True:
            for service in [*self.coordinators, *self.workers, *([self.ui] if self.ui else [])]:
                if not (service.alive() or service.stop_requested):
                    raise RuntimeError(f"{service.kind} {service.pid} exited early "
                                       f"(status {service.proc.returncode if service.proc else '?'}"
                                       f"); see {service.log_path}")
            try:
                live = {w.pid for w in self.live_workers()}
                if (self.leader() is not None and live <= self.registered_worker_pids()
                        and self._ui_answers()):
                    return
            except (redis.ConnectionError, redis.TimeoutError):
                pass  # Redis not up (yet, or again): not ready
            if time.monotonic() >= deadline:
                raise RuntimeError(f"cluster not ready after {timeout_s} s; logs in "
                                   f"{self.data_dir}")
            time.sleep(_POLL_S)

    def _ui_answers(self) -> bool:
        if self.ui is None or not self.ui_port:
            return True
        try:
            with socket.create_connection((UI_HOST, self.ui_port), timeout=0.2):
                return True
        except OSError:
            return False

    @property
    def owns_redis(self) -> bool:
        """Whether the cluster runs its own Redis (not one given by URL)."""
        return self.redis is not None

    @property
    def temporary(self) -> bool:
        """Whether everything (the Redis data included) is deleted by `stop`."""
        return self._tmp is not None and self.owns_redis

    def stop(self, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> None:
        """SIGTERM every service (workers finish or hand back their tasks), SIGKILL
        what still runs after ``timeout_s``; then Redis, then the temporary directory."""
        if self.ui is not None:
            self.ui.stop(min(timeout_s, UI_STOP_TIMEOUT_S))
        for worker in self.workers:
            worker.signal_group(15)
        for service in [*self.workers, *self.coordinators]:
            service.stop(timeout_s)
        if self._client is not None:
            self._client.close()
        if self.redis is not None:
            self.redis.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def kill_services(self) -> None:
        """SIGKILL every service's process group without waiting (safe in a signal
        handler, e.g. a second Ctrl-C during `stop`, which then reaps them at once)."""
        for service in [*self.workers, *self.coordinators, *([self.ui] if self.ui else [])]:
            service.stop_requested = True
            service.signal_group(9)

    def __enter__(self) -> LocalCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def pid_in_name(name: str) -> int:
    """The pid inside a worker name ``gf-HOST-PID-xxxx`` or a coordinator id
    ``coord-HOST-PID-xxxxxx`` (both default names; 0 for others)."""
    try:
        return int(name.rsplit("-", 2)[-2])
    except (IndexError, ValueError):
        return 0
