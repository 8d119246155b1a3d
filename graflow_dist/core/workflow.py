"""``workflow(name)``: the context manager that collects tasks into a graph."""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

from graflow_dist.core.graph import TaskGraph
from graflow_dist.drawing.model import DrawGraph
from graflow_dist.drawing.text import render_text
from graflow_dist.scheduler.state import DEFAULT_MAX_STEPS

if TYPE_CHECKING:
    from graflow_dist.client import Client
    from graflow_dist.core.context import ExecutionContext
    from graflow_dist.trace.base import Tracer

_current: ContextVar[WorkflowContext | None] = ContextVar("graflow_dist_workflow", default=None)


class WorkflowContext:
    """A named workflow: ``with workflow("etl") as wf: a >> b; wf.execute()``.

    ``tracer`` receives the hooks of the runs it executes in process.
    """

    def __init__(self, name: str, tracer: Tracer | None = None) -> None:
        self.name = name
        self.tracer = tracer
        self.graph = TaskGraph()
        self._group_counter = 0
        self._tokens: list[Token[WorkflowContext | None]] = []

    def __enter__(self) -> WorkflowContext:
        self._tokens.append(_current.set(self))
        return self

    def __exit__(self, *exc: object) -> None:
        _current.reset(self._tokens.pop())

    def add_node(self, name: str, task: Any, skip_if_exists: bool = False) -> None:
        """Add ``task`` to this workflow's graph as node ``name``."""
        self.graph.add_node(task, name, skip_if_exists=skip_if_exists)

    def add_edge(self, from_node: str, to_node: str) -> None:
        self.graph.add_edge(from_node, to_node)

    def rename_node(self, old_task_id: str, new_task_id: str) -> None:
        self.graph.rename_node(old_task_id, new_task_id)

    def show_info(self) -> None:
        """Print the workflow's graph as text and whether its ``>>`` edges form cycles."""
        print(f"=== Workflow '{self.name}' Information ===")
        drawn = DrawGraph.from_shape(self.graph.shape())
        print(render_text(drawn))
        cycles = drawn.find_cycles()
        print(f"Cycles detected: {cycles}" if cycles else "No cycles detected")

    def visualize_dependencies(self) -> None:
        """Print each task with its successors."""
        print(f"=== Workflow '{self.name}' Dependencies ===")
        for node in self.graph.nodes:
            successors = self.graph.successors(node)
            if successors:
                print(f"{node} >> {' >> '.join(successors)}")
            else:
                print(f"{node} (no dependencies)")

    def next_group_name(self) -> str:
        self._group_counter += 1
        return f"ParallelGroup_{self._group_counter}"

    def create_context(
        self, start_node: str | None = None, max_steps: int = DEFAULT_MAX_STEPS, **kwargs: Any
    ) -> ExecutionContext:
        from graflow_dist.core.context import ExecutionContext

        kwargs.setdefault("tracer", self.tracer)
        kwargs["config"] = {"workflow": self.name, **(kwargs.get("config") or {})}
        return ExecutionContext.create(self.graph, start_node, max_steps=max_steps, **kwargs)

    def execute(
        self,
        start_node: str | None = None,
        max_steps: int = DEFAULT_MAX_STEPS,
        ret_context: bool = False,
        initial_channel: dict[str, Any] | None = None,
        client: Client | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Run the workflow and return the last executed task's result (or
        ``(result, context)`` with ``ret_context=True``).

        With ``client=`` the run goes to a cluster and this call waits for it
        (``timeout`` seconds at most). Raises a `WorkflowError` subclass when the run
        fails, is cancelled, or exceeds ``max_steps``.
        """
        from graflow_dist.core.engine import WorkflowEngine

        ctx = self.create_context(start_node, max_steps)
        for key, value in (initial_channel or {}).items():
            ctx.channel.set(key, value)
        if client is not None:
            run = client.submit(ctx)
            result = run.wait(timeout)
            return (result, run.context()) if ret_context else result
        result = WorkflowEngine().execute(ctx)
        return (result, ctx) if ret_context else result

    def __repr__(self) -> str:
        return f"workflow({self.name!r}, nodes={list(self.graph.nodes)})"


def workflow(name: str, tracer: Tracer | None = None) -> WorkflowContext:
    """A new workflow; use it as a context manager while defining its tasks."""
    return WorkflowContext(name, tracer=tracer)


def get_current_workflow_context() -> WorkflowContext | None:
    return _current.get()


_default = WorkflowContext("default")


def current_workflow_context() -> WorkflowContext:
    """The active workflow, or a process-wide default one for tasks wired outside any
    ``with workflow(...)`` block."""
    return _current.get() or _default


def suspend_workflow_context() -> Token[WorkflowContext | None]:
    """While tasks run, new tasks are dynamic, not members of the defining workflow."""
    return _current.set(None)


def restore_workflow_context(token: Token[WorkflowContext | None]) -> None:
    _current.reset(token)
