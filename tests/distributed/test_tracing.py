"""Tracing on a cluster: task spans recorded by real worker processes continue the
trace the run was submitted in.

The workers run with an OpenTelemetry SDK configured the way an operator would (here a
``sitecustomize`` on PYTHONPATH, as ``opentelemetry-instrument`` does) that writes
every finished span to a JSON-lines file per process.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from graflow_dist import Client
from graflow_dist.core.decorators import task
from graflow_dist.core.workflow import workflow
from graflow_dist.embedded import RedisServer
from graflow_dist.embedded.cluster import LocalCluster
from graflow_dist.trace.otel import ATTR_ATTEMPT, ATTR_SESSION, ATTR_TASK, ATTR_WORKER
from graflow_dist.wire.messages import Batch

WORKER_OPTIONS = ["--lease-s", "2", "--heartbeat-s", "0.5", "--grace-period-s", "5"]

SPANS_DIR_ENV = "GRAFLOW_TEST_SPANS_DIR"
SITECUSTOMIZE = f'''
import json, os

if os.environ.get("{SPANS_DIR_ENV}"):
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

    _out = open(os.path.join(os.environ["{SPANS_DIR_ENV}"], f"spans-{{os.getpid()}}.jsonl"),
                "a", buffering=1)
    _provider = TracerProvider()
    _provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(
        out=_out, formatter=lambda span: json.dumps(json.loads(span.to_json())) + "\\n")))
    trace.set_tracer_provider(_provider)
'''


@pytest.fixture(scope="module")
def traced_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCluster,
                                                                               Path]]:
    root = tmp_path_factory.mktemp("traced")
    site, spans = root / "site", root / "spans"
    site.mkdir()
    spans.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", SPANS_DIR_ENV)}
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), saved["PYTHONPATH"]]))
    os.environ[SPANS_DIR_ENV] = str(spans)
    try:
        server = RedisServer(dir=root / "redis").start()
        cluster = LocalCluster(2, redis_url=server.url, data_dir=str(root / "services"),
                               worker_options=[*WORKER_OPTIONS, "--tracer", "otel"])
        cluster.start()
    finally:  # the services copied the environment; the test process keeps its own
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    try:
        yield cluster, spans
    finally:
        cluster.stop()
        server.stop()


def worker_spans(spans_dir: Path) -> list[dict[str, Any]]:
    found = []
    for path in spans_dir.glob("spans-*.jsonl"):
        for line in path.read_text().splitlines():
            if line.strip():
                found.append(json.loads(line))
    return found


def flaky_workflow(name: str):
    with workflow(name) as wf:
        @task
        def fetch() -> int:
            return 2

        @task(inject_context=True, max_retries=2)
        def enrich(ctx, fetch: int) -> int:
            if ctx.get_channel().atomic_add("enrich_attempts") == 1:
                raise RuntimeError("first attempt fails")
            return fetch * 10

        @task
        def audit(fetch: int) -> str:
            return "ok"

        @task
        def store(enrich: int, audit: str) -> str:
            return f"{enrich}-{audit}"

        fetch >> (enrich | audit) >> store
    return wf


def test_task_spans_on_workers_continue_the_submitters_trace(traced_cluster,
                                                             wait_until) -> None:
    cluster, spans_dir = traced_cluster
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with Client(cluster.url) as client:
        with provider.get_tracer("test").start_as_current_span("http request") as request:
            run = client.submit(flaky_workflow("traced"))
        assert run.wait(30) == "20-ok"
    trace_id = format(request.get_span_context().trace_id, "032x")
    request_id = format(request.get_span_context().span_id, "016x")

    def ours() -> list[dict[str, Any]]:
        spans = [s for s in worker_spans(spans_dir)
                 if s["attributes"].get(ATTR_SESSION) == run.session_id]
        return spans if len(spans) >= 5 else []

    spans = wait_until(ours, "5 task spans from the workers", timeout_s=10)
    assert sorted(s["name"] for s in spans) == ["audit", "enrich", "enrich", "fetch", "store"]
    workers = set()
    for span in spans:
        assert span["context"]["trace_id"] == f"0x{trace_id}"
        assert span["parent_id"] == f"0x{request_id}"
        assert span["attributes"][ATTR_TASK] == span["name"]
        workers.add(span["attributes"][ATTR_WORKER])
    assert workers and all(w.startswith("gf-") for w in workers)  # worker names
    enrich = sorted((s for s in spans if s["name"] == "enrich"),
                    key=lambda s: s["attributes"][ATTR_ATTEMPT])
    assert [s["attributes"][ATTR_ATTEMPT] for s in enrich] == [1, 2]
    assert enrich[0]["status"]["status_code"] == "ERROR"
    assert enrich[0]["events"][0]["name"] == "exception"
    assert enrich[1]["status"]["status_code"] == "UNSET"


def test_a_run_submitted_outside_any_trace_still_gets_task_spans(traced_cluster,
                                                                 wait_until) -> None:
    cluster, spans_dir = traced_cluster
    with Client(cluster.url) as client:
        run = client.submit(flaky_workflow("untraced"))
        assert run.wait(30) == "20-ok"

    def ours() -> list[dict[str, Any]]:
        spans = [s for s in worker_spans(spans_dir)
                 if s["attributes"].get(ATTR_SESSION) == run.session_id]
        return spans if len(spans) >= 5 else []

    spans = wait_until(ours, "5 task spans", timeout_s=10)
    assert all(s["parent_id"] is None for s in spans)  # each task is a trace root


def test_batches_carry_the_trace_context_and_old_payloads_still_decode() -> None:
    carrier: dict[str, str] = {}
    provider = TracerProvider()
    with provider.get_tracer("test").start_as_current_span("x"):
        TraceContextTextMapPropagator().inject(carrier)
    batch = Batch("s1", "g1", [], traceparent=carrier["traceparent"])
    assert Batch.from_job_data(batch.job_data(), "j").traceparent == carrier["traceparent"]
    old = {"v": 1, "s": "s1", "g": "g1", "specs": []}  # written before the field
    assert Batch.from_body(old).traceparent == ""
    assert "tp" not in Batch("s1", "g1", []).to_body()  # nothing to carry, nothing sent
