"""NoopTracer: records the runtime graph (if enabled) and outputs nothing."""

from __future__ import annotations

from typing import Any

from graflow_dist.trace.base import Tracer


class NoopTracer(Tracer):
    """The default tracer of a run."""

    def _output_trace_start(self, name: str, trace_id: str | None,
                            metadata: dict[str, Any] | None) -> None:
        pass

    def _output_trace_end(self, name: str, output: Any,
                          metadata: dict[str, Any] | None) -> None:
        pass

    def _output_span_start(self, name: str, parent_name: str | None,
                           metadata: dict[str, Any] | None) -> None:
        pass

    def _output_span_end(self, name: str, output: Any,
                         metadata: dict[str, Any] | None) -> None:
        pass

    def _output_event(self, name: str, parent_span: str | None,
                      metadata: dict[str, Any] | None) -> None:
        pass

    def _output_attach_to_trace(self, trace_id: str, parent_span_id: str | None) -> None:
        pass

    def clone(self, trace_id: str) -> NoopTracer:
        branch = NoopTracer(enable_runtime_graph=False)
        branch._current_trace_id = trace_id
        return branch
