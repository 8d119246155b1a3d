"""ConsoleTracer: an indented, timestamped account of a run on standard output."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from graflow_dist.trace.base import Tracer

if TYPE_CHECKING:
    from graflow_dist.core.context import ExecutionContext

ANSI = {"gray": "\033[90m", "green": "\033[92m", "red": "\033[91m", "yellow": "\033[93m",
        "blue": "\033[94m", "cyan": "\033[96m"}
ANSI_RESET = "\033[0m"
SHOWN_METADATA = ("trace_id", "task_type", "handler_type", "type")


class ConsoleTracer(Tracer):
    """Prints lines like ``→ [12:34:56.123] SPAN START: extract (task_type: ...)`` and
    ``✓ [12:34:56.234] SPAN END: extract (110ms)``, nested by indentation.

    Parameters
    ----------
    enable_colors:
        ANSI colours.
    show_metadata:
        Show the trace id and task type next to starts.
    indent_size:
        Spaces per nesting level.
    """

    def __init__(self, enable_runtime_graph: bool = True, enable_colors: bool = True,
                 show_metadata: bool = True, indent_size: int = 2) -> None:
        super().__init__(enable_runtime_graph=enable_runtime_graph)
        self.enable_colors = enable_colors
        self.show_metadata = show_metadata
        self.indent_size = indent_size
        self._indent_level = 0
        self._started: dict[str, datetime] = {}

    def _colour(self, text: str, colour: str) -> str:
        return f"{ANSI[colour]}{text}{ANSI_RESET}" if self.enable_colors else text

    def _print(self, message: str, icon: str, colour: str) -> None:
        indent = " " * (self._indent_level * self.indent_size)
        stamp = self._colour(f"[{datetime.now().strftime('%H:%M:%S.%f')[:-3]}]", "gray")
        print(f"{indent}{self._colour(icon, colour)} {stamp} {message}")

    def _meta(self, metadata: dict[str, Any] | None) -> str:
        if not metadata or not self.show_metadata:
            return ""
        shown = [f"{k}: {v}" for k, v in metadata.items() if k in SHOWN_METADATA]
        return f" ({', '.join(shown)})" if shown else ""

    def _duration(self, name: str) -> str:
        started = self._started.pop(name, None)
        if started is None:
            return ""
        ms = (datetime.now() - started).total_seconds() * 1000
        return f" ({ms:.0f}ms)" if ms < 1000 else f" ({ms / 1000:.2f}s)"

    def _output_trace_start(self, name: str, trace_id: str | None,
                            metadata: dict[str, Any] | None) -> None:
        self._started[name] = datetime.now()
        meta = self._meta({"trace_id": trace_id, **(metadata or {})})
        self._print(self._colour(f"TRACE START: {name}{meta}", "cyan"), "→", "cyan")
        self._indent_level += 1

    def _output_trace_end(self, name: str, output: Any,
                          metadata: dict[str, Any] | None) -> None:
        self._indent_level = max(self._indent_level - 1, 0)
        self._print(self._colour(f"TRACE END: {name}{self._duration(name)}", "cyan"), "✓",
                    "green")

    def _output_span_start(self, name: str, parent_name: str | None,
                           metadata: dict[str, Any] | None) -> None:
        self._started[name] = datetime.now()
        self._print(self._colour(f"SPAN START: {name}{self._meta(metadata)}", "blue"), "→",
                    "blue")
        self._indent_level += 1

    def _output_span_end(self, name: str, output: Any,
                         metadata: dict[str, Any] | None) -> None:
        self._indent_level = max(self._indent_level - 1, 0)
        error = metadata.get("error") if metadata else None
        duration = self._duration(name)
        if error:
            self._print(self._colour(f"SPAN END: {name} - ERROR: {error}{duration}", "red"),
                        "✗", "red")
        else:
            self._print(self._colour(f"SPAN END: {name}{duration}", "blue"), "✓", "green")

    def _output_event(self, name: str, parent_span: str | None,
                      metadata: dict[str, Any] | None) -> None:
        self._print(self._colour(f"EVENT: {name}{self._meta(metadata)}", "yellow"), "⚡",
                    "yellow")

    def _output_attach_to_trace(self, trace_id: str, parent_span_id: str | None) -> None:
        self._print(self._colour(f"ATTACHED TO TRACE: {trace_id[:16]}... (parent: "
                                 f"{parent_span_id or 'none'})", "cyan"), "🔗", "cyan")

    def clone(self, trace_id: str) -> ConsoleTracer:
        branch = ConsoleTracer(enable_runtime_graph=False, enable_colors=self.enable_colors,
                               show_metadata=self.show_metadata, indent_size=self.indent_size)
        branch._indent_level = self._indent_level
        branch._current_trace_id = trace_id
        return branch

    def on_parallel_group_start(self, group_id: str, member_ids: list[str],
                                context: ExecutionContext) -> None:
        self.event(f"parallel_group_start: {group_id}", metadata={"members": len(member_ids)})
        super().on_parallel_group_start(group_id, member_ids, context)

    def on_parallel_group_end(self, group_id: str, member_ids: list[str],
                              context: ExecutionContext,
                              results: dict[str, Any] | None = None) -> None:
        self.event(f"parallel_group_end: {group_id}",
                   metadata={"completed": len(results or {}), "total": len(member_ids)})

    def on_dynamic_task_added(self, task_id: str, parent_task_id: str | None = None,
                              is_iteration: bool = False,
                              metadata: dict[str, Any] | None = None) -> None:
        kind = "ITERATION" if is_iteration else "DYNAMIC"
        parent = f" (parent: {parent_task_id})" if parent_task_id else ""
        self._print(self._colour(f"+ {kind} TASK: {task_id}{parent}", "yellow"), "⚡", "yellow")
