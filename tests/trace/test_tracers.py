"""Tracers in process: hooks from the engine, Graflow's console output, the runtime
graph, and OpenTelemetry spans per task."""

from __future__ import annotations

import pickle

import pytest
from opentelemetry.trace import StatusCode

from graflow_dist.core.checkpoint import CheckpointManager
from graflow_dist.core.context import ExecutionContext
from graflow_dist.core.decorators import task
from graflow_dist.core.engine import WorkflowEngine
from graflow_dist.core.workflow import workflow
from graflow_dist.errors import TaskExecutionError
from graflow_dist.trace import ConsoleTracer, NoopTracer, OpenTelemetryTracer, Tracer
from graflow_dist.trace.factory import tracer_from_name
from graflow_dist.trace.otel import ATTR_ATTEMPT, ATTR_CYCLE, ATTR_SESSION, ATTR_TASK


def fan_out(tracer: Tracer | None, attempts: list[int] | None = None):
    with workflow("fan_out", tracer=tracer) as wf:
        @task
        def start() -> int:
            return 1

        @task
        def left(start: int) -> int:
            return start + 1

        @task(max_retries=1)
        def right(start: int) -> int:
            if attempts is not None:
                attempts.append(1)
                if len(attempts) == 1:
                    raise RuntimeError("flaky")
            return start + 2

        @task
        def join(left: int, right: int) -> int:
            return left + right

        start >> (left | right) >> join
    return wf


class Recorder(Tracer):
    """A Graflow-style custom tracer: only the _output_* methods."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def _output_trace_start(self, name, trace_id, metadata):
        self.calls.append(f"trace_start {name}")

    def _output_trace_end(self, name, output, metadata):
        self.calls.append(f"trace_end {name} {output}")

    def _output_span_start(self, name, parent_name, metadata):
        self.calls.append(f"span_start {name}")

    def _output_span_end(self, name, output, metadata):
        error = (metadata or {}).get("error")
        self.calls.append(f"span_end {name}" + (f" error={error}" if error else ""))

    def _output_event(self, name, parent_span, metadata):
        self.calls.append(f"event {name}")

    def _output_attach_to_trace(self, trace_id, parent_span_id):
        self.calls.append(f"attach {trace_id}")

    def clone(self, trace_id):
        return Recorder()

    def on_dynamic_task_added(self, task_id, parent_task_id=None, is_iteration=False,
                              metadata=None):
        self.calls.append(f"dynamic {task_id} from {parent_task_id} iteration={is_iteration}")

    def on_parallel_group_end(self, group_id, member_ids, context, results=None):
        self.calls.append(f"group_end {group_id} {sorted(results or {})}")


def test_a_custom_tracer_sees_runs_tasks_and_groups() -> None:
    recorder = Recorder()
    assert fan_out(recorder, attempts=[]).execute() == 5
    calls = recorder.calls
    assert calls[0] == "trace_start fan_out" and calls[-1] == "trace_end fan_out 5"
    assert calls[1:3] == ["span_start start", "span_end start"]
    assert "span_end right error=flaky" in calls  # the failed first attempt
    assert calls.count("span_start right") == 2
    assert "group_end ParallelGroup_1 ['left', 'right']" in calls
    assert calls.index("group_end ParallelGroup_1 ['left', 'right']") < \
        calls.index("span_start join")


def test_dynamic_tasks_and_iterations_reach_the_tracer() -> None:
    recorder = Recorder()
    with workflow("dyn", tracer=recorder) as wf:
        @task(inject_context=True)
        def loop(ctx) -> None:
            if ctx.cycle_count < 2:
                ctx.next_iteration()
            else:
                ctx.next_task(extra)

        @task
        def extra() -> str:
            return "x"

        @task
        def first() -> None: ...

        first >> loop
        wf.graph.remove_node("extra")
    wf.execute()
    assert "dynamic loop from loop iteration=True" in recorder.calls
    assert "dynamic extra from loop iteration=False" in recorder.calls
    assert recorder.calls[-2:] == ["span_end extra", "trace_end dyn x"]


def test_console_tracer_prints_graflows_lines(capsys) -> None:
    fan_out(ConsoleTracer(enable_colors=False)).execute()
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    shapes = [" ".join(part for i, part in enumerate(line.split(" ")) if i != 1)
              for line in lines]  # without the timestamp
    assert shapes[0].startswith("→ TRACE START: fan_out (trace_id: ")
    assert shapes[1] == "→ SPAN START: start (task_type: TaskWrapper, handler_type: direct)"
    assert shapes[2].startswith("✓ SPAN END: start (") and shapes[2].endswith("ms)")
    assert "⚡ EVENT: parallel_group_start: ParallelGroup_1" in shapes
    assert "⚡ EVENT: parallel_group_end: ParallelGroup_1" in shapes
    assert shapes[-1].startswith("✓ TRACE END: fan_out (")
    assert all("\033[" not in line for line in lines)


def test_noop_tracer_keeps_the_runtime_graph() -> None:
    tracer = NoopTracer()
    with pytest.raises(TaskExecutionError):
        with workflow("bad", tracer=tracer) as wf:
            @task
            def ok() -> int:
                return 1

            @task
            def boom(ok: int) -> None:
                raise ValueError("no")

            ok >> boom
            wf.execute()
    assert tracer.get_execution_order() == ["bad", "ok", "boom"]
    graph = tracer.get_runtime_graph()
    assert graph.nodes["ok"]["status"] == "completed"
    assert graph.nodes["ok"]["metadata"]["output"] == "1"
    assert graph.nodes["boom"]["status"] == "failed"
    assert graph.nodes["boom"]["metadata"]["error_type"] == "ValueError"
    exported = tracer.export_runtime_graph("json")
    assert [n["id"] for n in exported["nodes"]] == ["bad", "ok", "boom"]
    assert "<graphml" in tracer.export_runtime_graph("graphml")["graphml"]
    with pytest.raises(ValueError, match="unsupported export format 'xml'"):
        tracer.export_runtime_graph("xml")


def test_otel_tracer_emits_a_span_per_task_under_the_run(tracer_provider,
                                                          span_exporter) -> None:
    attempts: list[int] = []
    wf = fan_out(OpenTelemetryTracer(tracer_provider), attempts)
    result, ctx = wf.execute(ret_context=True)
    assert result == 5
    spans = span_exporter.get_finished_spans()
    by_name: dict[str, list] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    run = by_name["fan_out"][0]
    assert run.parent is None and run.attributes[ATTR_SESSION] == ctx.session_id
    for name in ("start", "left", "right", "join"):
        for span in by_name[name]:
            assert span.parent.span_id == run.context.span_id
            assert span.context.trace_id == run.context.trace_id
            assert span.attributes[ATTR_TASK] == name
            assert span.attributes[ATTR_SESSION] == ctx.session_id
            assert span.attributes[ATTR_CYCLE] == 1
    first, second = sorted(by_name["right"], key=lambda s: s.attributes[ATTR_ATTEMPT])
    assert (first.attributes[ATTR_ATTEMPT], second.attributes[ATTR_ATTEMPT]) == (1, 2)
    assert first.status.status_code is StatusCode.ERROR
    assert [e.name for e in first.events] == ["exception"]
    assert second.status.status_code is StatusCode.UNSET
    assert run.status.status_code is StatusCode.UNSET


def test_a_failed_run_ends_its_span_with_an_error(tracer_provider, span_exporter) -> None:
    with workflow("broken", tracer=OpenTelemetryTracer(tracer_provider)) as wf:
        @task
        def boom() -> None:
            raise KeyError("k")

        with pytest.raises(TaskExecutionError):
            wf.execute()
    run = next(s for s in span_exporter.get_finished_spans() if s.name == "broken")
    assert run.status.status_code is StatusCode.ERROR
    from opentelemetry import trace

    assert not trace.get_current_span().get_span_context().is_valid  # nothing left open


def test_user_spans_inside_a_task_nest_under_the_task(tracer_provider, span_exporter) -> None:
    inner_tracer = tracer_provider.get_tracer("user")
    with workflow("nested", tracer=OpenTelemetryTracer(tracer_provider)) as wf:
        @task
        def work() -> None:
            with inner_tracer.start_as_current_span("db query"):
                pass

        wf.execute()
    spans = {s.name: s for s in span_exporter.get_finished_spans()}
    assert spans["db query"].parent.span_id == spans["work"].context.span_id


def test_checkpoints_leave_the_tracer_out_and_a_resume_can_set_one(
        tmp_path, tracer_provider, span_exporter) -> None:
    tracer = OpenTelemetryTracer(tracer_provider)
    with workflow("cp") as wf:
        @task(inject_context=True)
        def first(ctx) -> int:
            ctx.checkpoint(path=str(tmp_path / "cp"))
            return 1

        @task
        def second(first: int) -> int:
            return first + 1

        first >> second
    ctx = ExecutionContext.create(wf.graph, tracer=tracer)
    WorkflowEngine().execute(ctx)
    restored, _ = CheckpointManager.resume_from_checkpoint(ctx.last_checkpoint_path)
    assert type(restored.tracer) is NoopTracer  # tracers hold connections: not saved
    restored.tracer = tracer
    span_exporter.clear()
    assert WorkflowEngine().execute(restored) == 2
    names = [s.name for s in span_exporter.get_finished_spans()]
    assert names == ["second", f"workflow_{ctx.session_id[:8]}"]  # created without a name
    copy = pickle.loads(pickle.dumps(tracer))  # a tracer itself still pickles
    assert copy.get_current_span_id() is None


def test_tracers_by_name(monkeypatch, tracer_provider) -> None:
    import opentelemetry.trace

    # auto: spans only where an SDK sends them somewhere (the API alone drops them all)
    assert type(tracer_from_name("auto")) is NoopTracer
    monkeypatch.setattr(opentelemetry.trace, "_TRACER_PROVIDER", tracer_provider)
    assert isinstance(tracer_from_name("auto"), OpenTelemetryTracer)
    assert isinstance(tracer_from_name("console"), ConsoleTracer)
    monkeypatch.setenv("GRAFLOW_DIST_TRACER", "noop")
    assert type(tracer_from_name()) is NoopTracer
    assert tracer_from_name().get_runtime_graph() is None  # services keep no graph
    with pytest.raises(ValueError, match="unknown tracer 'jaeger'"):
        tracer_from_name("jaeger")
