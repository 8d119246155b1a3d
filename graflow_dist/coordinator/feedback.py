"""What the coordinator records on feedback requests whose deadline passed."""

from __future__ import annotations

import structlog

from graflow_dist.broker import Broker
from graflow_dist.errors import FeedbackError
from graflow_dist.hitl.backend.redis import RedisFeedbackBackend
from graflow_dist.hitl.types import PENDING, TIMEOUT

log = structlog.get_logger("graflow_dist.coordinator")


class FeedbackTimeouts:
    """Marks requests timed out (their task stays parked: a late answer still wakes it)
    and notes the checkpoint written for the waiting run, as the in-process engine does."""

    def __init__(self, broker: Broker) -> None:
        self.backend = RedisFeedbackBackend(broker.feedback)

    def note_timeouts(self, feedback_ids: list[str], checkpoint_path: str) -> None:
        for feedback_id in feedback_ids:
            try:
                request = self.backend.get_request(feedback_id)
            except FeedbackError as exc:
                log.error("feedback request unreadable", feedback_id=feedback_id,
                          error=str(exc))
                continue
            if request is None or request.status != PENDING:
                continue  # answered meanwhile, or gone
            request.status = TIMEOUT
            request.metadata.update({"checkpoint_path": checkpoint_path,
                                     "checkpoint_reason": "feedback_timeout"})
            self.backend.store_request(request)
