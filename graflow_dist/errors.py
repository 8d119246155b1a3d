"""The graflow-dist exception hierarchy.

Every message says what failed, where (task id, file, session) and, where it helps,
what to do about it.
"""

from __future__ import annotations


class GraflowError(Exception):
    """Base class of every error raised by graflow-dist."""


# --- workflow definition -------------------------------------------------------------


class GraphError(GraflowError):
    """The workflow graph is malformed (unknown node, duplicate id, unreachable cycle)."""


class UnknownTaskError(GraphError):
    """A task id was referenced that the graph does not contain."""

    def __init__(self, task_id: str, where: str = "graph") -> None:
        self.task_id = task_id
        super().__init__(f"unknown task {task_id!r} in {where}")


class DeadlockError(GraphError):
    """Tasks remain that can never become ready (e.g. a cycle built with plain `>>`)."""

    def __init__(self, blocked: list[str]) -> None:
        self.blocked = blocked
        shown = ", ".join(repr(t) for t in blocked[:10])
        more = f" and {len(blocked) - 10} more" if len(blocked) > 10 else ""
        super().__init__(
            f"workflow cannot progress: tasks {shown}{more} wait for predecessors that can "
            "never complete (a cycle built with `>>`? use next_iteration() for loops)"
        )


# --- running ------------------------------------------------------------------------


class WorkflowError(GraflowError):
    """A run did not complete successfully."""


class TaskExecutionError(WorkflowError):
    """A task raised and its retries (if any) are exhausted."""

    def __init__(
        self, task_id: str, cause: str, attempts: int = 1, session_id: str | None = None
    ) -> None:
        self.task_id = task_id
        self.cause = cause
        self.attempts = attempts
        self.session_id = session_id
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        super().__init__(f"task {task_id!r} failed{tries}: {cause}")


class ParallelGroupError(WorkflowError):
    """A parallel group's policy was not satisfied by its members' outcomes."""

    def __init__(self, group_id: str, policy: str, failed: dict[str, str]) -> None:
        self.group_id = group_id
        self.policy = policy
        self.failed = failed
        detail = "; ".join(f"{t}: {c}" for t, c in sorted(failed.items()))
        super().__init__(f"parallel group {group_id!r} failed its {policy} policy: {detail}")


class CycleLimitExceededError(WorkflowError):
    """A task asked for more iterations than its `max_cycles` allows."""

    def __init__(self, task_id: str, max_cycles: int) -> None:
        self.task_id = task_id
        self.max_cycles = max_cycles
        super().__init__(
            f"task {task_id!r} exceeded max_cycles={max_cycles}; raise it with "
            f"@task(max_cycles=...) if the loop is meant to run longer"
        )


class MaxStepsExceededError(WorkflowError):
    """The run executed `max_steps` tasks without finishing."""

    def __init__(self, max_steps: int, pending: list[str]) -> None:
        self.max_steps = max_steps
        self.pending = pending
        super().__init__(
            f"workflow stopped after max_steps={max_steps} with {len(pending)} task(s) "
            f"still pending ({', '.join(pending[:5])}); raise max_steps or check for a loop"
        )


class WorkflowCancelledError(WorkflowError):
    """A task called `cancel_workflow`, or the run was cancelled from outside."""

    def __init__(self, reason: str, task_id: str | None = None) -> None:
        self.reason = reason
        self.task_id = task_id
        where = f" by task {task_id!r}" if task_id else ""
        super().__init__(f"workflow cancelled{where}: {reason}")


class DeadLetterError(WorkflowError):
    """A task's workers kept dying; it was dead-lettered after its crash limit."""

    def __init__(self, task_id: str, crashes: int, workers: list[str], cause: str) -> None:
        self.task_id = task_id
        self.crashes = crashes
        self.workers = workers
        self.cause = cause
        super().__init__(
            f"task {task_id!r} dead-lettered after {crashes} lost attempts "
            f"(workers: {', '.join(workers) or 'unknown'}); last cause: {cause}. "
            "Fix the cause, then `graflow-dist resume` the run"
        )


# --- checkpoints and wire -------------------------------------------------------------


class CheckpointError(GraflowError):
    """A checkpoint cannot be written or loaded. The message names the file and cause."""

    def __init__(self, path: str, cause: str) -> None:
        self.path = path
        self.cause = cause
        super().__init__(f"checkpoint {path}: {cause}")


class CheckpointWarning(UserWarning):
    """A run on a cluster asked for a checkpoint that was not written (a path outside
    the coordinator's checkpoint directory, a full disk): the run went on, as it does
    there, and `WorkflowRun.wait` warns once it ends. In process the error is raised."""

    def __init__(self, session_id: str, error: str) -> None:
        self.session_id = session_id
        self.error = error
        super().__init__(f"run {session_id}: a checkpoint was not written: {error}")


class SignatureError(GraflowError):
    """A signed blob is unsigned, forged or signed with another secret."""


class WireError(GraflowError):
    """A message on a queue or in a completion log is malformed."""


class WrongTypeError(WireError):
    """A Redis key holds another type than graflow-dist stores there (someone else
    wrote it). ``keys`` maps each such key to the type it holds."""

    def __init__(self, message: str, keys: dict[str, str] | None = None) -> None:
        self.keys = dict(keys or {})
        super().__init__(message)


class ConfigurationError(GraflowError, ValueError):
    """A setting (environment variable or option) has a value graflow-dist cannot use."""


class SecretError(ConfigurationError):
    """The signing secret is missing, empty, too short, or its key file is unusable."""


class InvalidNameError(GraflowError, ValueError):
    """A session id, prefix, queue, workflow name or task id has characters or a length
    graflow-dist does not accept."""


class PayloadTooLargeError(GraflowError, ValueError):
    """A result, channel value or message is larger than the configured limit."""


class CodeMissingError(GraflowError):
    """A submission counted on a graph's code being stored in Redis, and it is gone."""


class CodeLoadError(GraflowError):
    """A worker verified a task's code but could not load it (a module or name the
    workflow needs is missing where the worker runs)."""


# --- distributed runtime -----------------------------------------------------------


class ConnectionConfigError(GraflowError):
    """The Redis URL is malformed, unreachable, or its credentials are refused.
    ``unreachable`` is set when nothing answered (worth retrying), not for bad URLs or
    refused credentials."""

    unreachable = False


class RedisRefusedWritesError(GraflowError):
    """Redis takes no writes for now: full (``maxmemory`` under ``noeviction``), a
    read-only replica, a snapshot it cannot write, ... The message says which."""


class RedisServerError(GraflowError, RuntimeError):
    """The embedded redis-server (of `graflow-dist up` and the tests) could not be found,
    started or stopped."""


class UnknownSessionError(GraflowError):
    """No run with this session id is known to the cluster (or its data expired)."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        super().__init__(
            f"unknown session {session_id!r}: no such run on this Redis "
            "(wrong --redis-url or GRAFLOW_DIST_PREFIX, or its data expired)"
        )


class RunTimeoutError(GraflowError):
    """`WorkflowRun.wait(timeout)` elapsed before the run finished."""


class RunActiveError(GraflowError):
    """A session was submitted while a run of it is still active on the cluster."""


class TaskStateError(GraflowError):
    """An action on a task that its state does not allow (e.g. retrying a task that
    did not fail)."""

    def __init__(self, session_id: str, task_id: str, state: str, wanted: str) -> None:
        self.session_id = session_id
        self.task_id = task_id
        self.state = state
        super().__init__(f"task {task_id!r} of run {session_id} is {state}: {wanted}")


class ConsoleAccessError(GraflowError):
    """The web console would be reachable beyond this machine without a token, or a
    request lacks the credentials or the same-origin proof it needs."""


class ConsoleRequestError(GraflowError):
    """A web console request with a bad parameter (answered with status 400)."""


class RunEndedError(GraflowError):
    """An operation needs an active run (e.g. cancel) but the run already ended."""

    def __init__(self, session_id: str, status: str) -> None:
        self.session_id = session_id
        self.status = status
        super().__init__(f"run {session_id} is already {status}: nothing to cancel")


class NotLeaderError(GraflowError):
    """The coordinator lost its leader lease; its in-memory state is discarded."""


class StaleStateError(GraflowError):
    """Redis holds fewer commits than this coordinator made (it lost acknowledged
    writes); the in-memory state is discarded and reloaded from Redis."""


class CommitTooLargeError(GraflowError):
    """A coordinator commit holds a command too long for the commit script."""


class PermissionDeniedError(GraflowError):
    """The Redis user lacks a permission (ACL) graflow-dist needs; nothing was written."""


class RetryLimitExceededError(TaskExecutionError):
    """A task with a retry policy failed on every allowed attempt."""


class TaskTimeoutError(TaskExecutionError):
    """A task ran past its timeout (``@task(timeout=...)`` or the worker's
    ``--task-timeout-s``) on its last allowed attempt. On a worker its process was
    killed; in process it was interrupted (see `graflow_dist.core.time_limit`)."""

    def __init__(self, task_id: str, timeout_s: float, attempts: int = 1,
                 session_id: str | None = None) -> None:
        self.timeout_s = timeout_s
        super().__init__(task_id, f"timed out after {timeout_s:g} s (raise @task(timeout=...) "
                         "or the worker's --task-timeout-s if it needs longer)", attempts,
                         session_id)


# --- human in the loop, handlers, coordination ------------------------------------------


class FeedbackError(GraflowError):
    """A human-feedback request or response is invalid, or its store cannot be read."""


class FeedbackValidationError(FeedbackError, ValueError):
    """A feedback request or response does not fit its type (also a `ValueError`, which
    is what Graflow raises for an unknown feedback type)."""


class FeedbackTimeoutError(FeedbackError):
    """Nobody answered a feedback request within its ``timeout`` (Graflow's name and
    message). Raised inside the task; if the task lets it escape, the run stops as
    ``waiting`` with a checkpoint to resume once the answer is there."""

    def __init__(self, feedback_id: str, timeout: float) -> None:
        self.feedback_id = feedback_id
        self.timeout = timeout
        super().__init__(f"Feedback request {feedback_id} timed out after {timeout} seconds")

    def __reduce__(self) -> tuple[type[FeedbackTimeoutError], tuple[str, float]]:
        return (self.__class__, (self.feedback_id, self.timeout))


class UnknownFeedbackError(FeedbackError):
    """No feedback request with this id is known (here)."""

    def __init__(self, feedback_id: str) -> None:
        self.feedback_id = feedback_id
        super().__init__(f"no feedback request {feedback_id!r} on this cluster "
                         "(see `graflow-dist feedback list`)")


class FeedbackCancelledError(FeedbackError):
    """A feedback request was cancelled (e.g. ``DELETE /api/feedback/{id}``): the task
    that asked for it gets this instead of an answer."""

    def __init__(self, feedback_id: str) -> None:
        self.feedback_id = feedback_id
        super().__init__(f"feedback request {feedback_id} was cancelled")


class TaskHandlerError(GraflowError):
    """A task names a handler this process does not know, or the handler cannot run."""


class CoordinationError(GraflowError):
    """A parallel group asks for a coordination backend that cannot run it here."""


# Graflow's names, so code catching them keeps working after the import rename
# (`graflow_dist.exceptions` is Graflow's module path for them).
GraflowRuntimeError = WorkflowError
GraflowWorkflowCanceledError = WorkflowCancelledError
GraphCompilationError = GraphError
TaskError = TaskExecutionError


class DuplicateTaskError(GraphError):
    """Two different tasks with one id were added to a workflow."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        super().__init__(f"duplicate task id {task_id!r}: a different task already has it")


def error_attributes(error: BaseException) -> dict[str, object]:
    """The plain-data attributes of an error (``task_id``, ``max_cycles``, ...), so
    another process can rebuild it with `error_from_name`."""
    return {k: v for k, v in vars(error).items()
            if isinstance(v, str | int | float | bool | list | dict)}


def error_from_name(
    name: str, message: str, attributes: dict[str, object] | None = None
) -> GraflowError:
    """Rebuild an error reported by another process (by class name and message).

    Unknown names become a plain `WorkflowError`, so a client never fails to raise.
    """
    cls = globals().get(name)
    if not (isinstance(cls, type) and issubclass(cls, GraflowError)):
        cls = WorkflowError
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    for key, value in (attributes or {}).items():
        setattr(error, key, value)
    return error


class UnsupportedGraphError(GraphError, TypeError):
    """A drawing or graph utility was given something that is not a graph."""


# --- optional features ----------------------------------------------------------------


class MissingDependencyError(GraflowError, ImportError):
    """An optional library a feature needs is not installed."""

    def __init__(self, package: str, feature: str, install: str) -> None:
        self.package = package
        self.feature = feature
        super().__init__(f"{feature} needs {package}, which is not installed: {install}")


class ChannelTypeError(GraflowError, TypeError):
    """A typed channel's message type is unusable, or a value written to or read from
    it does not match that type."""
