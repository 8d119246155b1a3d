"""Prometheus metrics and the health endpoints (``/metrics``, ``/livez``, ``/readyz``).

``/livez`` never touches Redis (a Redis blip must not restart every pod); ``/readyz``
reports whether the process is doing its work now (a worker registered and Redis
answering; a coordinator leading with Redis answering; a standby is not ready) and why.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

WORKER = "worker"
COORDINATOR = "coordinator"
POOL = "pool"  # a `worker --concurrency N` parent: only process metrics of its own

METRICS_HOST_ENV = "GRAFLOW_DIST_METRICS_HOST"
DEFAULT_METRICS_HOST = "127.0.0.1"


class Metrics:
    """The process's metrics, in a registry of its own.

    Parameters
    ----------
    role:
        ``"worker"``, ``"coordinator"`` or ``"pool"``: only that role's families are
        exported (plus ``process_*`` and ``python_*``); ``None`` registers every family.
    """

    def __init__(self, role: str | None = None) -> None:
        self.role = role
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        if role in (None, WORKER):
            self.tasks = Counter("graflow_tasks_total", "Task executions by outcome",
                                 ["outcome"], registry=self.registry)
            self.task_seconds = Histogram("graflow_task_duration_seconds", "Task run time",
                                          registry=self.registry)
            self.leases_lost = Counter(
                "graflow_leases_lost_total",
                "Jobs whose lease this worker lost (re-dispatched elsewhere)",
                registry=self.registry)
        if role in (None, COORDINATOR):
            self.redispatched = Counter("graflow_redispatched_total",
                                        "Tasks re-dispatched after a lost lease",
                                        registry=self.registry)
            self.continued = Counter(
                "graflow_continued_total",
                "Successors run at once by the worker of their predecessor (adopted local "
                "continuations)", registry=self.registry)
            self.continuations_refused = Counter(
                "graflow_continuations_refused_total",
                "Local continuations refused (the successor was dispatched instead)",
                registry=self.registry)
            self.commits = Counter("graflow_coordinator_commits_total",
                                   "Fenced frontier commits", registry=self.registry)
            self.stale_reports = Counter(
                "graflow_stale_reports_total",
                "Task reports dropped because their dispatch token was fenced off (late, "
                "duplicate)", registry=self.registry)
            self.leader = Gauge("graflow_coordinator_leader",
                                "1 while this coordinator holds the leader lease",
                                registry=self.registry)

    def task_finished(self, kind: str, duration_s: float) -> None:
        self.tasks.labels(outcome=kind).inc()
        self.task_seconds.observe(duration_s)

    def lease_lost(self) -> None:
        self.leases_lost.inc()

    def family_names(self) -> set[str]:
        """Names of the exported metric families (for tests and docs)."""
        return {family.name for family in self.registry.collect()}


class HasRegistry(Protocol):
    """What `serve_health` serves: anything holding a registry (`Metrics`, a worker
    supervisor's metrics)."""

    registry: CollectorRegistry


Readiness = Callable[[], bool | tuple[bool, str]]


def serve_health(port: int, metrics: HasRegistry, ready: Readiness,
                 host: str = DEFAULT_METRICS_HOST) -> ThreadingHTTPServer:
    """Serve the endpoints from a daemon thread; returns the server (``.shutdown()``).
    Loopback only unless ``host`` says otherwise (a pod sets ``0.0.0.0``). ``ready``
    returns a bool, or ``(ready, reason)`` shown in the ``/readyz`` body."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path == "/metrics":
                body, ctype, code = generate_latest(metrics.registry), CONTENT_TYPE_LATEST, 200
            elif self.path == "/livez":
                body, ctype, code = b"ok\n", "text/plain", 200
            elif self.path == "/readyz":
                result = ready()
                ok, why = result if isinstance(result, tuple) else (bool(result), "")
                text = ("ready" if ok else "not ready") + (f": {why}" if why else "")
                body, ctype, code = f"{text}\n".encode(), "text/plain", 200 if ok else 503
            else:
                body, ctype, code = b"not found\n", "text/plain", 404
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="gf-health", daemon=True).start()
    return server
