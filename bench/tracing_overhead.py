#!/usr/bin/env python
"""What tracing adds to running one task (the code path workers and the engine share).

    .venv/bin/python bench/tracing_overhead.py [--tasks 20000]

Runs a no-op task through `invoke_task` with each service tracer (`noop`, `console`
writing to /dev/null, `otel` with and without an OpenTelemetry SDK recording spans to
memory) and prints microseconds per task, plus the per-batch cost of cloning the
worker's tracer and attaching it to the submission's trace context.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time

from graflow_dist.core.context import ExecutionContext
from graflow_dist.core.graph import TaskGraph
from graflow_dist.core.invoke import invoke_task
from graflow_dist.core.task import TaskWrapper
from graflow_dist.scheduler.specs import TaskSpec
from graflow_dist.trace.factory import tracer_from_name

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def per_task_us(tracer_name: str, tasks: int) -> tuple[float, float]:
    task = TaskWrapper("noop", lambda: None, register_to_context=False)
    graph = TaskGraph()
    graph.add_node(task)
    spec = TaskSpec("noop", "bench.1")
    proto = tracer_from_name(tracer_name)
    t0 = time.perf_counter()
    for _ in range(1000):
        proto.clone("trace").attach_to_traceparent(TRACEPARENT)
    clone_us = (time.perf_counter() - t0) / 1000 * 1e6
    tracer = proto.clone("trace")
    tracer.attach_to_traceparent(TRACEPARENT)
    ctx = ExecutionContext(graph, tracer=tracer)
    t0 = time.perf_counter()
    for _ in range(tasks):
        invoke_task(task, ctx, spec)
    return (time.perf_counter() - t0) / tasks * 1e6, clone_us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    args = parser.parse_args()
    print(f"{'tracer':<22}{'us/task':>10}{'us/batch clone':>16}")
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        rows = [(name, *per_task_us(name, args.tasks)) for name in ("noop", "console", "otel")]
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    trace.set_tracer_provider(provider)
    rows.append(("otel + SDK (memory)", *per_task_us("otel", args.tasks)))
    for name, task_us, clone_us in rows:
        print(f"{name:<22}{task_us:>10.1f}{clone_us:>16.1f}")


if __name__ == "__main__":
    main()
