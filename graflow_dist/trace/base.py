"""Tracer: the hooks the engine and the workers call around a run and its tasks.

Graflow's shape: lifecycle methods (``trace_start``/``trace_end``, ``span_start``/
``span_end``, ``event``) keep a runtime graph and call ``_output_*`` methods that
subclasses implement; ``on_*`` hooks map runs, tasks and parallel groups onto them.
"""

from __future__ import annotations

import io
import json
from abc import ABC, abstractmethod
from datetime import datetime
from typing import TYPE_CHECKING, Any

from graflow_dist.optional import require
from graflow_dist.trace.runtime_graph import RuntimeGraph

if TYPE_CHECKING:
    from graflow_dist.core.context import ExecutionContext

OUTPUT_PREVIEW_CHARS = 200  # a result's text kept in the runtime graph, not the result


def preview(value: Any) -> str | None:
    if value is None:
        return None
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not break tracing
        text = f"<{type(value).__name__}>"
    return text if len(text) <= OUTPUT_PREVIEW_CHARS else text[:OUTPUT_PREVIEW_CHARS] + "..."


def parse_traceparent(traceparent: str) -> tuple[str, str, int] | None:
    """``(trace_id, parent_span_id, flags)`` of a W3C ``traceparent``, or None."""
    parts = traceparent.strip().split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        if int(parts[1], 16) == 0 or int(parts[2], 16) == 0:
            return None
        return parts[1], parts[2], int(parts[3][:2], 16)
    except ValueError:
        return None


class Tracer(ABC):
    """Base class of tracers; ``enable_runtime_graph`` records what ran."""

    def __init__(self, enable_runtime_graph: bool = True) -> None:
        self.enable_runtime_graph = enable_runtime_graph
        self._runtime_graph: RuntimeGraph | None = RuntimeGraph() if enable_runtime_graph \
            else None
        self._execution_order: list[str] = []
        self._current_trace_id: str | None = None

    # --- lifecycle ----------------------------------------------------------------

    def trace_start(self, name: str, trace_id: str | None = None,
                    metadata: dict[str, Any] | None = None) -> None:
        self._current_trace_id = trace_id
        if self._runtime_graph is not None:
            self._record(name, {"type": "trace", "trace_id": trace_id, **(metadata or {})})
        self._output_trace_start(name, trace_id, metadata)

    def trace_end(self, name: str, output: Any = None,
                  metadata: dict[str, Any] | None = None) -> None:
        self._finish(name, "completed", output, metadata)
        self._output_trace_end(name, output, metadata)

    def span_start(self, name: str, parent_name: str | None = None,
                   metadata: dict[str, Any] | None = None) -> None:
        if self._runtime_graph is not None:
            self._record(name, {"type": "span", **(metadata or {})})
            if parent_name and parent_name in self._runtime_graph:
                self._runtime_graph.add_edge(parent_name, name, relation="parent-child")
        self._output_span_start(name, parent_name, metadata)

    def span_end(self, name: str, output: Any = None,
                 metadata: dict[str, Any] | None = None) -> None:
        failed = bool(metadata and metadata.get("error"))
        self._finish(name, "failed" if failed else "completed", output, metadata)
        self._output_span_end(name, output, metadata)

    def event(self, name: str, parent_span: str | None = None,
              metadata: dict[str, Any] | None = None) -> None:
        self._output_event(name, parent_span, metadata)

    # --- what subclasses implement -------------------------------------------------

    @abstractmethod
    def _output_trace_start(self, name: str, trace_id: str | None,
                            metadata: dict[str, Any] | None) -> None: ...

    @abstractmethod
    def _output_trace_end(self, name: str, output: Any,
                          metadata: dict[str, Any] | None) -> None: ...

    @abstractmethod
    def _output_span_start(self, name: str, parent_name: str | None,
                           metadata: dict[str, Any] | None) -> None: ...

    @abstractmethod
    def _output_span_end(self, name: str, output: Any,
                         metadata: dict[str, Any] | None) -> None: ...

    @abstractmethod
    def _output_event(self, name: str, parent_span: str | None,
                      metadata: dict[str, Any] | None) -> None: ...

    @abstractmethod
    def _output_attach_to_trace(self, trace_id: str, parent_span_id: str | None) -> None: ...

    @abstractmethod
    def clone(self, trace_id: str) -> Tracer:
        """A tracer for another thread or batch of the same trace (no runtime graph)."""

    # --- runs -----------------------------------------------------------------------

    def on_workflow_start(self, workflow_name: str, context: ExecutionContext) -> None:
        self.trace_start(workflow_name, trace_id=context.trace_id, metadata={
            "start_node": context.start_node, "max_steps": context.max_steps,
            "session_id": context.session_id})

    def on_workflow_end(self, workflow_name: str, context: ExecutionContext,
                        result: Any = None) -> None:
        self.trace_end(workflow_name, output=result, metadata={"steps": context.steps})

    # --- tasks ----------------------------------------------------------------------

    def on_task_queued(self, task: Any, context: ExecutionContext) -> None:  # noqa: B027 - optional hook
        """A task became ready (in process only: the cluster's coordinator has no
        tasks, only their ids)."""

    def on_task_start(self, task: Any, context: ExecutionContext) -> None:
        self.span_start(task.task_id, metadata={
            "task_type": type(task).__name__,
            "handler_type": getattr(task, "handler_type", "direct")})

    def on_task_end(self, task: Any, context: ExecutionContext, result: Any = None,
                    error: BaseException | None = None) -> None:
        metadata: dict[str, Any] = {}
        if error is not None:
            metadata = {"error": str(error), "error_type": type(error).__name__}
        self.span_end(task.task_id, output=result, metadata=metadata)

    def on_parallel_group_start(self, group_id: str, member_ids: list[str],
                                context: ExecutionContext) -> None:
        if self._runtime_graph is not None and group_id in self._runtime_graph:
            for member in member_ids:
                if member in self._runtime_graph:
                    self._runtime_graph.add_edge(group_id, member, relation="parallel-member")

    def on_parallel_group_end(  # noqa: B027 - optional hook
        self, group_id: str, member_ids: list[str], context: ExecutionContext,
        results: dict[str, Any] | None = None,
    ) -> None:
        """A parallel group's policy was satisfied; ``results`` holds the members that
        succeeded."""

    def on_dynamic_task_added(  # noqa: B027 - optional hook
        self, task_id: str, parent_task_id: str | None = None, is_iteration: bool = False,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """A task added ``task_id`` with ``next_task`` (or itself with
        ``next_iteration``: ``is_iteration``)."""

    # --- distributed runs -----------------------------------------------------------

    def attach_to_trace(self, trace_id: str, parent_span_id: str | None = None) -> None:
        """Continue an existing trace (on a worker: the one the run was submitted in)."""
        self._current_trace_id = trace_id
        self._output_attach_to_trace(trace_id, parent_span_id)

    def attach_to_traceparent(self, traceparent: str) -> None:
        """`attach_to_trace` from a W3C ``traceparent`` header value; ignored if it is
        empty or malformed."""
        parsed = parse_traceparent(traceparent)
        if parsed is not None:
            self.attach_to_trace(parsed[0], parsed[1])

    def flush(self) -> None:  # noqa: B027 - optional hook
        """Send buffered trace data."""

    def shutdown(self) -> None:  # noqa: B027 - optional hook
        """Flush and release resources."""

    # --- reading ----------------------------------------------------------------------

    def get_runtime_graph(self) -> RuntimeGraph | None:
        return self._runtime_graph

    def get_execution_order(self) -> list[str]:
        return list(self._execution_order)

    def get_current_span_id(self) -> str | None:
        return None

    def export_runtime_graph(self, format: str = "dict") -> dict[str, Any] | None:
        """The runtime graph as ``"dict"``, ``"json"`` (JSON-safe dict) or
        ``"graphml"`` (``{"graphml": text}``, needs networkx)."""
        graph = self._runtime_graph
        if graph is None:
            return None
        if format == "dict":
            return {
                "nodes": [{"id": n, **graph.nodes[n]} for n in graph],
                "edges": [{"source": a, "target": b, **graph.edge_data(a, b)}
                          for a, b in graph.edges],
                "execution_order": list(self._execution_order),
            }
        if format == "json":
            return json.loads(json.dumps(self.export_runtime_graph("dict"), default=str))
        if format == "graphml":
            nx_graph = graph.to_networkx()  # a clear error if networkx is missing
            networkx = require("networkx", "export_runtime_graph('graphml')")
            for _, attrs in nx_graph.nodes(data=True):  # graphml takes scalars only
                for key, value in list(attrs.items()):
                    if not isinstance(value, str | int | float | bool):
                        attrs[key] = str(value)
            buffer = io.BytesIO()
            networkx.write_graphml(nx_graph, buffer)
            return {"graphml": buffer.getvalue().decode()}
        raise ValueError(f"unsupported export format {format!r}: use dict, json or graphml")

    # --- internals ---------------------------------------------------------------------

    def _record(self, node_id: str, metadata: dict[str, Any]) -> None:
        assert self._runtime_graph is not None
        self._runtime_graph.add_node(node_id, status="running", start_time=datetime.now(),
                                     metadata=metadata)
        self._execution_order.append(node_id)

    def _finish(self, node_id: str, status: str, output: Any,
                metadata: dict[str, Any] | None) -> None:
        graph = self._runtime_graph
        if graph is None or node_id not in graph:
            return
        node = graph.nodes[node_id]
        node["status"] = status
        node["end_time"] = datetime.now()
        node.setdefault("metadata", {}).update({"output": preview(output), **(metadata or {})})
