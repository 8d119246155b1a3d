"""``workflow(name)``: the context manager that collects tasks into a graph."""

from __future__ import annotations

from typing import Any, Protocol

from graflow_dist.core.context import ExecutionContext
from graflow_dist.core.engine import WorkflowEngine
from graflow_dist.core.scope import (
    GraphScope,
    current_scope,
    get_current_scope,
    use_default_scope,
)
from graflow_dist.drawing.model import DrawGraph
from graflow_dist.drawing.text import render_text
from graflow_dist.scheduler.state import DEFAULT_MAX_STEPS
from graflow_dist.trace.base import Tracer


class RunSubmitter(Protocol):
    """What ``execute(client=...)`` needs: `graflow_dist.Client`."""

    def submit(self, workflow_or_context: Any) -> Any: ...


class WorkflowContext(GraphScope):
    """A named workflow: ``with workflow("etl") as wf: a >> b; wf.execute()``.

    ``tracer`` receives the hooks of the runs it executes in process.
    """

    def __init__(self, name: str, tracer: Tracer | None = None) -> None:
        super().__init__(name)
        self.tracer = tracer

    def __enter__(self) -> WorkflowContext:
        super().__enter__()
        return self

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

    def create_context(
        self, start_node: str | None = None, max_steps: int = DEFAULT_MAX_STEPS, **kwargs: Any
    ) -> ExecutionContext:
        kwargs.setdefault("tracer", self.tracer)
        kwargs["config"] = {"workflow": self.name, **(kwargs.get("config") or {})}
        return ExecutionContext.create(self.graph, start_node, max_steps=max_steps, **kwargs)

    def execute(
        self,
        start_node: str | None = None,
        max_steps: int = DEFAULT_MAX_STEPS,
        ret_context: bool = False,
        initial_channel: dict[str, Any] | None = None,
        client: RunSubmitter | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Run the workflow and return the last executed task's result (or
        ``(result, context)`` with ``ret_context=True``).

        With ``client=`` the run goes to a cluster and this call waits for it
        (``timeout`` seconds at most). Raises a `WorkflowError` subclass when the run
        fails, is cancelled, or exceeds ``max_steps``.
        """
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


def get_current_workflow_context() -> GraphScope | None:
    """The workflow being defined (inside ``with workflow(...)``), or while a task runs
    its dynamic scope; None outside both."""
    return get_current_scope()


def current_workflow_context() -> GraphScope:
    """The active workflow, or a process-wide default one for tasks wired outside any
    ``with workflow(...)`` block."""
    return current_scope()


use_default_scope(WorkflowContext)
