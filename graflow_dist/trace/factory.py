"""Tracers by name, for services configured from the command line or environment."""

from __future__ import annotations

import os

from graflow_dist.trace.base import Tracer
from graflow_dist.trace.console import ConsoleTracer
from graflow_dist.trace.noop import NoopTracer
from graflow_dist.trace.otel import OpenTelemetryTracer, otel_configured

TRACER_ENV = "GRAFLOW_DIST_TRACER"
TRACER_NAMES = ("auto", "otel", "console", "noop")


def tracer_from_name(name: str | None = None) -> Tracer:
    """``auto`` (default; ``otel`` when an OpenTelemetry SDK is configured in this
    process, else ``noop``: without one every span would be dropped), ``otel``,
    ``console`` or ``noop``; None reads `TRACER_ENV`. Service tracers keep no runtime
    graph (a worker runs tasks of many runs)."""
    chosen = (name or os.environ.get(TRACER_ENV) or "auto").lower()
    if chosen == "auto":
        chosen = "otel" if otel_configured() else "noop"
    if chosen == "otel":
        return OpenTelemetryTracer(enable_runtime_graph=False)
    if chosen == "console":
        return ConsoleTracer(enable_runtime_graph=False, enable_colors=False)
    if chosen == "noop":
        return NoopTracer(enable_runtime_graph=False)
    raise ValueError(f"unknown tracer {chosen!r}: use one of {', '.join(TRACER_NAMES)}")
