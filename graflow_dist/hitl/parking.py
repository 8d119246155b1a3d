"""Parking: on a cluster worker a task that waits for a person gives its worker back.

`ParkingFeedbackManager.wait_for_response` does not block: with no answer stored yet it
raises `TaskParked`, the worker reports the task as parked, and the coordinator runs it
again (from its start) once the answer arrives; ``request_feedback`` then finds the
answer under the same feedback id and returns it.
"""

from __future__ import annotations

from graflow_dist.hitl.manager import FeedbackManager
from graflow_dist.hitl.types import FeedbackRequest, FeedbackResponse


class TaskParked(BaseException):  # noqa: N818 - a signal, not an error
    """The running task waits for ``request``'s answer. A BaseException, so task code
    that catches ``Exception`` does not swallow it."""

    def __init__(self, request: FeedbackRequest) -> None:
        super().__init__(f"waiting for feedback {request.feedback_id}")
        self.request = request


class ParkingFeedbackManager(FeedbackManager):
    """A `FeedbackManager` whose tasks park instead of blocking a worker."""

    def wait_for_response(self, request: FeedbackRequest) -> FeedbackResponse | None:
        answer = self.backend.get_response(request.feedback_id)
        if answer is not None:
            return answer
        raise TaskParked(request)
