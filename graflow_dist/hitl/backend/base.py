"""The storage protocol of human feedback (Graflow's `FeedbackBackend` methods)."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod

from graflow_dist.hitl.types import PENDING, FeedbackRequest, FeedbackResponse

DEFAULT_RECENT_REQUESTS = 100


class FeedbackBackend(ABC):
    """Keeps feedback requests and responses by feedback id.

    Stores must write each document atomically (a reader sees the old or the new one,
    never a part) and must be safe to use from several threads. ``publish`` and
    ``start_listener`` are optional: a store that can notify lets a waiting task wake
    at once instead of at its next poll.
    """

    @abstractmethod
    def store_request(self, request: FeedbackRequest) -> None:
        """Create or replace the request with ``request.feedback_id``."""

    @abstractmethod
    def get_request(self, feedback_id: str) -> FeedbackRequest | None:
        """The request, or None if there is none."""

    @abstractmethod
    def store_response(self, response: FeedbackResponse) -> None:
        """Create or replace the response with ``response.feedback_id``."""

    @abstractmethod
    def get_response(self, feedback_id: str) -> FeedbackResponse | None:
        """The response, or None while nobody answered."""

    @abstractmethod
    def list_requests(
        self, session_id: str | None = None, n_recent: int = DEFAULT_RECENT_REQUESTS
    ) -> list[FeedbackRequest]:
        """Requests of any status (of ``session_id`` if given), newest first, at most
        ``n_recent``."""

    def list_pending_requests(self, session_id: str | None = None) -> list[FeedbackRequest]:
        """Requests still waiting for an answer (of ``session_id`` if given)."""
        return [r for r in self.list_requests(session_id, n_recent=2**31)
                if r.status == PENDING]

    def publish(self, feedback_id: str) -> None:  # noqa: B027 - optional hook
        """Tell listeners that ``feedback_id`` was answered (optional)."""

    def start_listener(
        self, feedback_id: str, notification_event: threading.Event
    ) -> threading.Thread | None:
        """Set ``notification_event`` when ``feedback_id`` is answered; returns the
        listener thread if one was started (optional: default None, callers poll)."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections or threads (optional)."""
