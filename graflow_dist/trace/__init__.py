"""Tracing with Graflow's shape: `Tracer` hooks called by the engine and by workers;
`NoopTracer` (default), `ConsoleTracer`, and `OpenTelemetryTracer` (one span per task,
needs ``opentelemetry-api``)."""

from graflow_dist.trace.base import Tracer
from graflow_dist.trace.console import ConsoleTracer
from graflow_dist.trace.noop import NoopTracer
from graflow_dist.trace.otel import OpenTelemetryTracer
from graflow_dist.trace.runtime_graph import RuntimeGraph

__all__ = ["ConsoleTracer", "NoopTracer", "OpenTelemetryTracer", "RuntimeGraph", "Tracer"]
