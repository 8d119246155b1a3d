"""ExecutionContext (one run) and TaskExecutionContext (one task execution)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from graflow_dist.channels.base import Channel, iteration_key, result_key
from graflow_dist.channels.memory import MemoryChannel
from graflow_dist.channels.typed import TypedChannel
from graflow_dist.core.cycle import CycleController
from graflow_dist.core.dynamic import DynamicNode, DynamicScope, collect_new_nodes, dynamic_shapes
from graflow_dist.core.feedback import FeedbackCalls
from graflow_dist.core.graph import TaskGraph
from graflow_dist.core.scope import get_current_scope
from graflow_dist.errors import CycleLimitExceededError
from graflow_dist.hitl.backend.base import FeedbackBackend
from graflow_dist.hitl.manager import FeedbackManager, default_feedback_manager
from graflow_dist.scheduler.events import CheckpointRequest, NextTask, RunStatus, TaskOutcome
from graflow_dist.scheduler.frontier import FrontierSnapshot
from graflow_dist.scheduler.specs import DEFAULT_MAX_CYCLES, TaskSpec
from graflow_dist.scheduler.state import DEFAULT_MAX_STEPS, Scheduler
from graflow_dist.trace.base import Tracer
from graflow_dist.trace.noop import NoopTracer

T = TypeVar("T")


# What `ExecutionContext.execute` runs: graflow_dist.core.engine registers
# `WorkflowEngine` here (the engine sits above this module).
_engine_factory: Callable[[], Any] | None = None


def use_engine(factory: Callable[[], Any]) -> None:
    global _engine_factory
    _engine_factory = factory


class ExecutionContext:
    """The state of one run: graph, channel, frontier and checkpoint bookkeeping.

    Parameters
    ----------
    graph:
        The workflow graph.
    start_node:
        Where the run starts (default: every node without predecessors).
    max_steps:
        Upper bound on task executions; exceeding it raises `MaxStepsExceededError`.
    channel:
        The run's channel (default: a `MemoryChannel` named after the session).
    tracer:
        Receives the run's and its tasks' hooks (default: a `NoopTracer`).
    """

    def __init__(
        self,
        graph: TaskGraph,
        start_node: str | None = None,
        max_steps: int = DEFAULT_MAX_STEPS,
        *,
        session_id: str | None = None,
        channel: Channel | None = None,
        default_max_cycles: int = DEFAULT_MAX_CYCLES,
        default_max_retries: int = 0,
        config: dict[str, Any] | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self.graph = graph
        self.start_node = start_node
        self.max_steps = max_steps
        self.session_id = session_id or uuid.uuid4().hex
        self.trace_id = self.session_id
        self.channel: Channel = channel if channel is not None else MemoryChannel(self.session_id)
        self.default_max_cycles = default_max_cycles
        self.default_max_retries = default_max_retries
        self.config = dict(config or {})
        self.frontier: FrontierSnapshot | None = None
        self.last_checkpoint_path: str | None = None
        self.checkpoint_metadata: dict[str, Any] = {}
        self.checkpoint_requested = False
        self.checkpoint_request_metadata: dict[str, Any] | None = None
        self.checkpoint_request_path: str | None = None
        self.status = RunStatus.RUNNING
        self.last_result: Any = None
        self._scheduler: Scheduler | None = None
        self.tracer: Tracer = tracer if tracer is not None else NoopTracer()
        self._feedback_manager: FeedbackManager | None = None

    @classmethod
    def create(
        cls,
        graph: TaskGraph,
        start_node: str | None = None,
        max_steps: int = DEFAULT_MAX_STEPS,
        default_max_cycles: int = DEFAULT_MAX_CYCLES,
        default_max_retries: int = 0,
        channel_backend: str = "memory",
        config: dict[str, Any] | None = None,
        tracer: Tracer | None = None,
        feedback_backend: str | FeedbackBackend | None = None,
        feedback_config: dict[str, Any] | None = None,
        **_: Any,
    ) -> ExecutionContext:
        context = cls(
            graph,
            start_node,
            max_steps,
            default_max_cycles=default_max_cycles,
            default_max_retries=default_max_retries,
            config=config,
            tracer=tracer,
        )
        if feedback_backend is not None:
            context.feedback_manager = FeedbackManager(
                feedback_backend, feedback_config, channel_manager=context.channel
            )
        return context

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self._scheduler is not None:
            state["frontier"] = self._scheduler.snapshot()
        state["_scheduler"] = None
        state["_feedback_manager"] = None  # a store connection stays in its process
        return state

    @property
    def feedback_manager(self) -> FeedbackManager:
        """Where this run's feedback requests and answers are kept: assign a
        `FeedbackManager` to choose; by default a directory store (see
        `default_feedback_manager`), created on first use."""
        if self._feedback_manager is None:
            self._feedback_manager = default_feedback_manager(self.channel)
        return self._feedback_manager

    @feedback_manager.setter
    def feedback_manager(self, manager: FeedbackManager) -> None:
        self._feedback_manager = manager

    # --- the frontier, live while running, else from the last snapshot ------------------

    def attach_scheduler(self, scheduler: Scheduler | None) -> None:
        self._scheduler = scheduler

    def current_frontier(self) -> FrontierSnapshot:
        if self._scheduler is not None:
            return self._scheduler.snapshot()
        if self.frontier is not None:
            return self.frontier
        # Not started yet: the frontier of a fresh start, so a resume starts the run.
        scheduler = Scheduler(
            self.graph.shape(self.default_max_cycles), self.session_id, max_steps=self.max_steps
        )
        scheduler.start([self.start_node] if self.start_node else None)
        return scheduler.snapshot()

    @property
    def steps(self) -> int:
        if self._scheduler is not None:
            return self._scheduler.steps
        return self.frontier.steps if self.frontier else 0

    @property
    def completed_tasks(self) -> list[str]:
        if self._scheduler is not None:
            return list(self._scheduler.completed)
        return list(self.frontier.completed_tasks) if self.frontier else []

    @property
    def cycle_counts(self) -> dict[str, int]:
        if self._scheduler is not None:
            return dict(self._scheduler.cycle_counts)
        return dict(self.frontier.cycle_counts) if self.frontier else {}

    @property
    def cycle_controller(self) -> CycleController:
        """Graflow's cycle API over this run's counts and limits."""
        return CycleController.for_context(self)

    @property
    def pending_tasks(self) -> list[TaskSpec]:
        if self._scheduler is not None:
            return self._scheduler.pending
        return list(self.frontier.pending_tasks) if self.frontier else []

    # --- results ----------------------------------------------------------------------

    def set_result(self, task_id: str, value: Any) -> None:
        self.channel.set(result_key(task_id), value)

    def get_result(self, task_id: str, default: Any = None) -> Any:
        return self.channel.get(result_key(task_id), default)

    def clear_checkpoint_request(self) -> None:
        self.checkpoint_requested = False
        self.checkpoint_request_metadata = None
        self.checkpoint_request_path = None

    def execute(self) -> Any:
        """Run (or continue) this context in process (`WorkflowEngine`)."""
        assert _engine_factory is not None, "graflow_dist.core.engine is not loaded"
        return _engine_factory().execute(self)

    def __repr__(self) -> str:
        return (
            f"ExecutionContext(session_id={self.session_id!r}, steps={self.steps}, "
            f"status={self.status.value})"
        )


class TaskExecutionContext(FeedbackCalls):
    """What a task with ``inject_context=True`` receives as its first argument.

    Control calls (``checkpoint``, ``next_iteration``, ``next_task``,
    ``terminate_workflow``, ``cancel_workflow``) are recorded and take effect after the
    task returns, so a task is always either completed or pending, never half-done.
    """

    def __init__(
        self,
        task_id: str,
        execution_context: ExecutionContext,
        spec: TaskSpec | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.task_id = task_id
        self.execution_context = execution_context
        self.spec = spec or TaskSpec(task_id=task_id, token="local")
        self.worker_id = worker_id or f"local-{os.getpid()}"
        self.start_time = time.time()
        self.local_data: dict[str, Any] = {}
        self.outcome = TaskOutcome()
        self.new_tasks: dict[str, DynamicNode] = {}  # task id -> node made by next_task

    # --- identity -----------------------------------------------------------------

    @property
    def session_id(self) -> str:
        return self.execution_context.session_id

    @property
    def trace_id(self) -> str:
        return self.execution_context.trace_id

    @property
    def graph(self) -> TaskGraph:
        return self.execution_context.graph

    @property
    def cycle_count(self) -> int:
        """1 on a task's first run, 2 on its second iteration, and so on."""
        return self.spec.cycle + 1

    @property
    def max_cycles(self) -> int:
        node = self.graph.get_node_or_none(self.task_id)
        if node is not None and getattr(node, "max_cycles", None) is not None:
            return int(node.max_cycles)
        return self.execution_context.default_max_cycles

    @property
    def retry_count(self) -> int:
        return self.spec.attempt - 1

    @property
    def max_retries(self) -> int:
        node = self.graph.get_node_or_none(self.task_id)
        return int(getattr(node, "max_retries", 0) or 0)

    @property
    def attempt(self) -> int:
        return self.spec.attempt

    @property
    def dispatch_token(self) -> str:
        return self.spec.token

    def elapsed_time(self) -> float:
        return time.time() - self.start_time

    # --- state --------------------------------------------------------------------

    def get_channel(self) -> Channel:
        return self.execution_context.channel

    def get_result(self, task_id: str, default: Any = None) -> Any:
        return self.execution_context.get_result(task_id, default)

    def get_typed_channel(self, message_type: type[T]) -> TypedChannel[T]:
        """The channel seen through ``message_type`` (a TypedDict or a dataclass):
        values written and read are checked against it."""
        return TypedChannel(self.get_channel(), message_type)

    def set_local_data(self, key: str, value: Any) -> None:
        self.local_data[key] = value

    def get_local_data(self, key: str, default: Any = None) -> Any:
        return self.local_data.get(key, default)

    # --- control ------------------------------------------------------------------

    def checkpoint(
        self,
        metadata: dict[str, Any] | str | os.PathLike[str] | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        deferred: bool = True,
    ) -> None:
        """Ask for a checkpoint once this task has completed successfully.

        ``metadata`` lands in ``.meta.json`` as ``user_metadata``; ``path`` is a base
        name (``BASE.pkl``, ``BASE.state.json``, ``BASE.meta.json``), default
        ``checkpoints/{session_id}/...``. A path given positionally is accepted too.
        Checkpoints are always deferred: a checkpoint never records a running task.
        """
        if isinstance(metadata, str | os.PathLike):
            path, metadata = metadata, None
        meta = dict(metadata or {})
        meta.setdefault("task_id", self.task_id)
        meta.setdefault("cycle_count", self.cycle_count)
        meta.setdefault("elapsed_time", self.elapsed_time())
        meta.setdefault("mode", "deferred")
        request = CheckpointRequest(os.fspath(path) if path is not None else None, meta)
        self.outcome.checkpoint = request
        ctx = self.execution_context
        ctx.checkpoint_requested = True
        ctx.checkpoint_request_metadata = meta
        ctx.checkpoint_request_path = request.path

    def can_iterate(self) -> bool:
        return self.cycle_count < self.max_cycles

    def next_iteration(self, data: Any = None) -> str:
        """Run this task again after it returns (its successors wait for the last
        iteration). ``data`` is passed to the next run as its positional argument."""
        if not self.can_iterate():
            raise CycleLimitExceededError(self.task_id, self.max_cycles)
        self.outcome.iterate = True
        if data is not None:
            self.get_channel().set(iteration_key(self.task_id, self.cycle_count + 1), data)
        return self.task_id

    def next_task(self, executable: Any, goto: bool = False) -> str:
        """Schedule ``executable`` after this task: a task, a parallel group or a chain,
        e.g. ``next_task(parallel(a(x=1), b(x=2)) >> join)`` (the join runs once,
        after the group). New tasks join the graph when this task completes and the
        normal successors still run; ``goto=True`` (or an existing task) jumps there
        instead of the successors."""
        task_id = executable.task_id
        scope = get_current_scope()
        scratch = scope.graph if isinstance(scope, DynamicScope) else TaskGraph()
        nodes = collect_new_nodes(executable, scratch, self.graph, self.new_tasks)
        shapes = dynamic_shapes(nodes, self.graph, self.execution_context.default_max_cycles)
        self.new_tasks.update(nodes)
        entry = shapes.pop(task_id, None)
        self.outcome.next_tasks.append(NextTask(task_id, goto, entry, tuple(shapes.values())))
        return task_id

    def terminate_workflow(self, message: str = "terminated") -> None:
        """End the run successfully after this task (its successors do not run)."""
        self.outcome.terminate = message

    def cancel_workflow(self, message: str = "Workflow canceled") -> None:
        """Cancel the run after this task returns; the run fails with
        `WorkflowCancelledError` and this task is not recorded as completed."""
        self.outcome.cancel = message

    def __repr__(self) -> str:
        return f"TaskExecutionContext(task_id={self.task_id!r}, cycle={self.cycle_count})"
