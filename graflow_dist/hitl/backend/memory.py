"""Feedback kept in this process's memory: for tests and single-process programs
where the answer comes from another thread."""

from __future__ import annotations

import json
import threading
import weakref

from graflow_dist.hitl.backend.base import DEFAULT_RECENT_REQUESTS, FeedbackBackend
from graflow_dist.hitl.types import FeedbackRequest, FeedbackResponse


class MemoryFeedbackBackend(FeedbackBackend):
    """Requests and responses in dicts; a stored response wakes its waiters at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[str, str] = {}
        self._responses: dict[str, str] = {}
        self._listeners: dict[str, weakref.WeakSet[threading.Event]] = {}

    # Documents are kept as JSON text, as the other stores keep them: a caller mutating
    # an object it stored or got never changes the store behind its back.

    def store_request(self, request: FeedbackRequest) -> None:
        with self._lock:
            self._requests[request.feedback_id] = json.dumps(request.to_dict())

    def get_request(self, feedback_id: str) -> FeedbackRequest | None:
        with self._lock:
            data = self._requests.get(feedback_id)
        return FeedbackRequest.from_dict(json.loads(data)) if data is not None else None

    def store_response(self, response: FeedbackResponse) -> None:
        with self._lock:
            self._responses[response.feedback_id] = json.dumps(response.to_dict())
        self.publish(response.feedback_id)

    def get_response(self, feedback_id: str) -> FeedbackResponse | None:
        with self._lock:
            data = self._responses.get(feedback_id)
        return FeedbackResponse.from_dict(json.loads(data)) if data is not None else None

    def list_requests(
        self, session_id: str | None = None, n_recent: int = DEFAULT_RECENT_REQUESTS
    ) -> list[FeedbackRequest]:
        with self._lock:
            docs = list(self._requests.values())
        found = [r for r in (FeedbackRequest.from_dict(json.loads(d)) for d in docs)
                 if session_id is None or r.session_id == session_id]
        found.sort(key=lambda r: r.created_at, reverse=True)
        return found[:n_recent]

    def publish(self, feedback_id: str) -> None:
        with self._lock:
            events = list(self._listeners.pop(feedback_id, ()))
        for event in events:
            event.set()

    def start_listener(
        self, feedback_id: str, notification_event: threading.Event
    ) -> threading.Thread | None:
        with self._lock:
            self._listeners.setdefault(feedback_id, weakref.WeakSet()).add(notification_event)
            answered = feedback_id in self._responses
        if answered:
            notification_event.set()
        return None
