"""RedisFeedbackBackend: feedback in the cluster's Redis (through the broker), so a
person can answer from any machine and the waiting task is woken wherever it runs.

Storing a response also announces it on the coordinator's stream, in the same
transaction (`graflow_dist.broker.feedback.FeedbackStore.answer`): the task parked on
that request runs again at once.
"""

from __future__ import annotations

import json
from datetime import datetime

from graflow_dist.broker.feedback import FeedbackStore
from graflow_dist.errors import FeedbackError
from graflow_dist.hitl.backend.base import DEFAULT_RECENT_REQUESTS, FeedbackBackend
from graflow_dist.hitl.types import (
    ANSWERABLE,
    CANCELLED,
    PENDING,
    FeedbackRequest,
    FeedbackResponse,
)


def _epoch(iso: str) -> float:
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return 0.0


def request_deadline(request: FeedbackRequest) -> float:
    """When ``request`` times out, in epoch seconds."""
    return _epoch(request.created_at) + request.timeout


class RedisFeedbackBackend(FeedbackBackend):
    """Feedback requests and responses in Redis.

    Parameters
    ----------
    store:
        The deployment's `FeedbackStore` (``Broker(...).feedback``).
    """

    def __init__(self, store: FeedbackStore) -> None:
        self.store = store

    def store_request(self, request: FeedbackRequest) -> None:
        self.store.put_request(request.feedback_id, request.session_id,
                               json.dumps(request.to_dict()),
                               created_at=_epoch(request.created_at),
                               pending=request.status in ANSWERABLE,
                               wake=request.status == CANCELLED)

    def get_request(self, feedback_id: str) -> FeedbackRequest | None:
        document = self.store.request(feedback_id)
        return None if document is None else _request(document, feedback_id)

    def store_response(self, response: FeedbackResponse) -> None:
        if not self.store.answer(response.feedback_id, json.dumps(response.to_dict())):
            raise FeedbackError(f"no feedback request {response.feedback_id!r} on this "
                                "cluster to answer")

    def get_response(self, feedback_id: str) -> FeedbackResponse | None:
        document = self.store.response(feedback_id)
        if document is None:
            return None
        try:
            return FeedbackResponse.from_dict(json.loads(document))
        except (ValueError, TypeError) as exc:
            raise FeedbackError(f"stored response of feedback {feedback_id!r} is damaged "
                                f"({exc})") from None

    def list_requests(self, session_id: str | None = None,
                      n_recent: int = DEFAULT_RECENT_REQUESTS) -> list[FeedbackRequest]:
        ids = self.store.ids(session_id, limit=n_recent)
        return [_request(doc, fid) for fid, doc, _resp in self.store.documents(ids)]

    def list_open_requests(self, session_id: str | None = None) -> list[FeedbackRequest]:
        """Requests a person can still answer: pending, or past their timeout (their
        task still waits), newest first."""
        ids = self.store.ids(session_id, pending_only=True, limit=2**31)
        requests = [_request(doc, fid) for fid, doc, _resp in self.store.documents(ids)]
        return [r for r in requests if r.status in ANSWERABLE]

    def list_pending_requests(self, session_id: str | None = None) -> list[FeedbackRequest]:
        return [r for r in self.list_open_requests(session_id) if r.status == PENDING]


def _request(document: str, feedback_id: str) -> FeedbackRequest:
    try:
        return FeedbackRequest.from_dict(json.loads(document))
    except (ValueError, TypeError) as exc:
        raise FeedbackError(f"stored feedback request {feedback_id!r} is damaged ({exc})") \
            from None
