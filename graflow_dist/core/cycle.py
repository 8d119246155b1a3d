"""CycleController: Graflow's API for per-task cycle counts and limits.

``ExecutionContext.cycle_controller`` is a view over the scheduler's counts, so it
always agrees with what the run does: a task's count is the number of times it has
started (the running task counts its current run, as in Graflow), and its limit is
its ``@task(max_cycles=...)`` or the run's default. Built on its own
(``CycleController(10)``) it keeps counts of its own, like Graflow's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from graflow_dist.errors import CycleLimitExceededError, WorkflowError
from graflow_dist.scheduler.specs import DEFAULT_MAX_CYCLES
from graflow_dist.trace.scope import current_task_context

if TYPE_CHECKING:
    from graflow_dist.core.context import ExecutionContext


class CycleController:
    """Cycle counts and limits per task id."""

    def __init__(self, default_max_cycles: int = DEFAULT_MAX_CYCLES) -> None:
        self._context: ExecutionContext | None = None
        self._default = default_max_cycles
        self._counts: dict[str, int] = {}
        self._limits: dict[str, int] = {}

    @classmethod
    def for_context(cls, context: ExecutionContext) -> CycleController:
        controller = cls(context.default_max_cycles)
        controller._context = context
        return controller

    # --- limits -----------------------------------------------------------------------

    @property
    def default_max_cycles(self) -> int:
        return self._context.default_max_cycles if self._context else self._default

    @property
    def node_max_cycles(self) -> dict[str, int]:
        """Tasks with a limit of their own."""
        if self._context is None:
            return dict(self._limits)
        graph = self._context.graph
        limits = {}
        for node_id in graph.nodes:
            limit = getattr(graph.get_node(node_id), "max_cycles", None)
            if limit is not None:
                limits[node_id] = int(limit)
        return limits

    def set_node_max_cycles(self, node_id: str, max_cycles: int) -> None:
        """Give ``node_id`` its own limit. In a run, this changes the task and the live
        schedule; on a cluster, a task's limit is the one it was submitted with."""
        if max_cycles < 1:
            raise ValueError(f"max_cycles of {node_id!r} must be >= 1, got {max_cycles}")
        if self._context is None:
            self._limits[node_id] = max_cycles
            return
        node = self._context.graph.get_node(node_id)
        node.max_cycles = max_cycles
        scheduler = self._context._scheduler
        if scheduler is not None and node_id in scheduler.shape.nodes:
            scheduler.shape.nodes[node_id].max_cycles = max_cycles

    def get_max_cycles_for_node(self, node_id: str) -> int:
        if self._context is None:
            return self._limits.get(node_id, self._default)
        node = self._context.graph.get_node_or_none(node_id)
        limit = getattr(node, "max_cycles", None)
        return int(limit) if limit is not None else self._context.default_max_cycles

    # --- counts -----------------------------------------------------------------------

    @property
    def cycle_counts(self) -> dict[str, int]:
        """Task id -> times started (a copy)."""
        if self._context is None:
            return dict(self._counts)
        counts = dict(self._context.cycle_counts)
        running = current_task_context()
        if running is not None and running.execution_context is self._context:
            counts[running.task_id] = max(counts.get(running.task_id, 0), running.cycle_count)
        return counts

    def get_cycle_count(self, node_id: str) -> int:
        """How many times ``node_id`` has started (0 if never)."""
        return self.cycle_counts.get(node_id, 0)

    def accept_next_cycle(self, node_id: str) -> bool:
        """True if ``node_id`` may run another cycle."""
        return self.get_cycle_count(node_id) < self.get_max_cycles_for_node(node_id)

    def check_cycle_limit(self, node_id: str) -> None:
        """Raise `CycleLimitExceededError` if ``node_id`` has used all its cycles."""
        if not self.accept_next_cycle(node_id):
            raise CycleLimitExceededError(node_id, self.get_max_cycles_for_node(node_id))

    def increment(self, node_id: str) -> int:
        """Count a start of ``node_id`` (standalone controllers only: in a run the
        scheduler counts)."""
        if self._context is not None:
            raise WorkflowError(
                f"cycle counts of run {self._context.session_id} are kept by its scheduler; "
                "a task iterates with next_iteration(), not by incrementing its count")
        self._counts[node_id] = self._counts.get(node_id, 0) + 1
        return self._counts[node_id]

    def __repr__(self) -> str:
        return f"CycleController(default_max_cycles={self.default_max_cycles}, " \
               f"counts={self.cycle_counts})"
