"""The human-feedback calls of `TaskExecutionContext` (Graflow's names and defaults)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graflow_dist.hitl.handler import FeedbackHandler
from graflow_dist.hitl.manager import FeedbackManager, feedback_id_for
from graflow_dist.hitl.types import DEFAULT_FEEDBACK_TIMEOUT_S, FeedbackResponse, FeedbackType

if TYPE_CHECKING:
    from graflow_dist.channels.base import Channel
    from graflow_dist.core.context import ExecutionContext
    from graflow_dist.scheduler.specs import TaskSpec


class FeedbackCalls:
    """Mixed into `TaskExecutionContext`: ``request_feedback`` and its shortcuts."""

    task_id: str
    spec: TaskSpec
    execution_context: ExecutionContext
    _feedback_calls: int = 0

    if TYPE_CHECKING:
        @property
        def session_id(self) -> str: ...

        def get_channel(self) -> Channel: ...

    @property
    def feedback_manager(self) -> FeedbackManager:
        """The run's feedback manager (see `ExecutionContext.feedback_manager`)."""
        return self.execution_context.feedback_manager

    def request_feedback(
        self,
        feedback_type: str | FeedbackType,
        prompt: str,
        options: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        timeout: float = DEFAULT_FEEDBACK_TIMEOUT_S,
        channel_key: str | None = None,
        write_to_channel: bool = False,
        handler: FeedbackHandler | None = None,
    ) -> FeedbackResponse:
        """Ask a person and wait for the answer (``timeout`` seconds at most).

        ``feedback_type`` is ``"approval"``, ``"text"``, ``"selection"`` (``options``
        required), ``"multi_selection"`` (``options`` required) or ``"custom"``. With
        ``write_to_channel=True`` the answer is also stored in the channel under
        ``channel_key``. ``handler`` gets the request's created / answered / timed-out
        callbacks.

        The request's id is fixed by this call's place in the run (session, task,
        iteration, n-th call in the task), so when the task runs again after a resume
        it gets the answer given meanwhile at once. If nobody answers in time,
        `FeedbackTimeoutError` is raised; when it leaves the task, the run stops as
        ``waiting`` and a checkpoint is written to continue from.
        """
        index = self._feedback_calls
        self._feedback_calls = index + 1
        return self.feedback_manager.request_feedback(
            task_id=self.task_id,
            session_id=self.session_id,
            feedback_type=FeedbackType.parse(feedback_type),
            prompt=prompt,
            options=options,
            metadata=metadata,
            timeout=timeout,
            channel_key=channel_key,
            write_to_channel=write_to_channel,
            feedback_id=feedback_id_for(self.session_id, self.task_id, self.spec.cycle, index),
            handler=handler,
            channel=self.get_channel(),
        )

    def request_approval(
        self,
        prompt: str,
        metadata: dict[str, Any] | None = None,
        timeout: float = DEFAULT_FEEDBACK_TIMEOUT_S,
        channel_key: str | None = None,
        write_to_channel: bool = False,
    ) -> bool:
        """Ask for approval; True if approved, False if rejected."""
        response = self.request_feedback(FeedbackType.APPROVAL, prompt, metadata=metadata,
                                         timeout=timeout, channel_key=channel_key,
                                         write_to_channel=write_to_channel)
        return bool(response.approved)

    def request_text_input(
        self,
        prompt: str,
        metadata: dict[str, Any] | None = None,
        timeout: float = DEFAULT_FEEDBACK_TIMEOUT_S,
        channel_key: str | None = None,
        write_to_channel: bool = False,
    ) -> str:
        """Ask for free text; the answer ("" if none was given)."""
        response = self.request_feedback(FeedbackType.TEXT, prompt, metadata=metadata,
                                         timeout=timeout, channel_key=channel_key,
                                         write_to_channel=write_to_channel)
        return response.text or ""

    def request_selection(
        self,
        prompt: str,
        options: list[str],
        metadata: dict[str, Any] | None = None,
        timeout: float = DEFAULT_FEEDBACK_TIMEOUT_S,
        channel_key: str | None = None,
        write_to_channel: bool = False,
    ) -> str:
        """Ask to pick one of ``options``; the chosen option."""
        response = self.request_feedback(FeedbackType.SELECTION, prompt, options=options,
                                         metadata=metadata, timeout=timeout,
                                         channel_key=channel_key,
                                         write_to_channel=write_to_channel)
        return response.selected or ""
