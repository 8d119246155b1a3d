"""Prometheus metrics and the health endpoints (``/metrics``, ``/livez``, ``/readyz``).

``/livez`` never touches Redis (a Redis blip must not restart every pod); ``/readyz``
reports whether the process is serving (worker registered, coordinator connected).
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
    Histogram,
    generate_latest,
)


class Metrics:
    """The process's metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.tasks = Counter("graflow_tasks_total", "Task executions by outcome",
                             ["outcome"], registry=self.registry)
        self.task_seconds = Histogram("graflow_task_duration_seconds", "Task run time",
                                      registry=self.registry)
        self.redispatched = Counter("graflow_redispatched_total",
                                    "Tasks re-dispatched after a lost lease",
                                    registry=self.registry)
        self.commits = Counter("graflow_coordinator_commits_total",
                               "Fenced frontier commits", registry=self.registry)
        self.leases_lost = Counter("graflow_leases_lost_total",
                                   "Jobs whose lease this worker lost (re-dispatched elsewhere)",
                                   registry=self.registry)
        self.stale_reports = Counter("graflow_stale_reports_total",
                                     "Task reports dropped because their dispatch token was "
                                     "fenced off (late, duplicate)", registry=self.registry)

    def task_finished(self, kind: str, duration_s: float) -> None:
        self.tasks.labels(outcome=kind).inc()
        self.task_seconds.observe(duration_s)

    def lease_lost(self) -> None:
        self.leases_lost.inc()


class HasRegistry(Protocol):
    """What `serve_health` serves: anything holding a registry (`Metrics`, a worker
    supervisor's metrics)."""

    registry: CollectorRegistry


def serve_health(port: int, metrics: HasRegistry, ready: Callable[[], bool],
                 host: str = "0.0.0.0") -> ThreadingHTTPServer:
    """Serve the endpoints from a daemon thread; returns the server (``.shutdown()``)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path == "/metrics":
                body, ctype, code = generate_latest(metrics.registry), CONTENT_TYPE_LATEST, 200
            elif self.path == "/livez":
                body, ctype, code = b"ok\n", "text/plain", 200
            elif self.path == "/readyz":
                ok = ready()
                body, ctype, code = (b"ready\n" if ok else b"not ready\n"), "text/plain", (
                    200 if ok else 503)
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
