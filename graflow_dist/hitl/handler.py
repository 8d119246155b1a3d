"""Callbacks on a feedback request's life: created, answered, timed out.

`FeedbackHandler` does nothing by default; override what you need. A handler's error
is logged and never fails the task that asked for feedback (as in Graflow).
`WebhookFeedbackHandler` and `SlackFeedbackHandler` post JSON to a URL.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import structlog

from graflow_dist.hitl.types import FeedbackRequest, FeedbackResponse, now_iso

DEFAULT_WEBHOOK_TIMEOUT_S = 10.0

log = structlog.get_logger(__name__)


class FeedbackHandler:
    """Base class of feedback callbacks; every method is a no-op."""

    def on_request_created(self, request: FeedbackRequest) -> None:
        """A request was stored and now waits for an answer: notify someone."""

    def on_response_received(self, request: FeedbackRequest, response: FeedbackResponse) -> None:
        """The task got its answer."""

    def on_request_timeout(self, request: FeedbackRequest) -> None:
        """Nobody answered within the request's timeout."""


def post_json(url: str, payload: dict[str, Any], headers: dict[str, str] | None = None,
              timeout: float = DEFAULT_WEBHOOK_TIMEOUT_S) -> bool:
    """POST ``payload`` as JSON; True on a 2xx answer, False (logged) otherwise."""
    body = json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8")
    request = urllib.request.Request(
        url, data=body, method="POST",
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            return 200 <= answer.status < 300
    except (urllib.error.URLError, OSError, ValueError) as exc:
        # The URL may carry a token: log the host part only.
        log.warning("feedback_webhook_failed", host=urllib.parse.urlsplit(url).hostname,
                    error=type(exc).__name__)
        return False


def request_summary(request: FeedbackRequest) -> dict[str, Any]:
    return {
        "feedback_id": request.feedback_id,
        "task_id": request.task_id,
        "session_id": request.session_id,
        "feedback_type": request.feedback_type.value,
        "prompt": request.prompt,
        "options": request.options,
        "timeout": request.timeout,
        "metadata": request.metadata,
        "created_at": request.created_at,
    }


class WebhookFeedbackHandler(FeedbackHandler):
    """POSTs ``{"event_type": ..., "timestamp": ..., "feedback_id": ..., ...}`` to
    ``webhook_url`` on each event (``request_created``, ``response_received``,
    ``request_timeout``)."""

    def __init__(self, webhook_url: str, headers: dict[str, str] | None = None,
                 timeout: float = DEFAULT_WEBHOOK_TIMEOUT_S) -> None:
        self.webhook_url = webhook_url
        self.headers = dict(headers or {})
        self.timeout = timeout

    def _send_webhook(self, event_type: str, payload: dict[str, Any]) -> bool:
        return post_json(self.webhook_url, {"event_type": event_type, "timestamp": now_iso(),
                                            **payload}, self.headers, self.timeout)

    def on_request_created(self, request: FeedbackRequest) -> None:
        self._send_webhook("request_created", request_summary(request))

    def on_response_received(self, request: FeedbackRequest, response: FeedbackResponse) -> None:
        answer = response.to_dict()
        for key in ("feedback_id", "response_type"):
            answer.pop(key)
        self._send_webhook("response_received", {
            **{k: v for k, v in request_summary(request).items()
               if k in ("feedback_id", "task_id", "session_id", "feedback_type")},
            "response": answer,
        })

    def on_request_timeout(self, request: FeedbackRequest) -> None:
        summary = request_summary(request)
        self._send_webhook("request_timeout", {
            k: summary[k] for k in ("feedback_id", "task_id", "session_id", "feedback_type",
                                    "prompt", "timeout")
        })


class SlackFeedbackHandler(FeedbackHandler):
    """Posts Slack messages (an incoming-webhook URL) about requests; with
    ``feedback_ui_url`` (a template with ``{feedback_id}``) the message links to the
    answer form."""

    def __init__(self, webhook_url: str, channel: str = "#approvals",
                 feedback_ui_url: str | None = None) -> None:
        self.webhook_url = webhook_url
        self.channel = channel
        self.feedback_ui_url = feedback_ui_url

    def _send_slack_message(self, message: dict[str, Any]) -> bool:
        return post_json(self.webhook_url, {"channel": self.channel, **message})

    def on_request_created(self, request: FeedbackRequest) -> None:
        blocks: list[dict[str, Any]] = [
            _section(f"*{request.prompt}*"),
            _context(f"Task: `{request.task_id}` | Timeout: `{request.timeout}s` | "
                     f"ID: `{request.feedback_id}`"),
        ]
        if self.feedback_ui_url:
            url = self.feedback_ui_url.format(feedback_id=request.feedback_id)
            blocks.append({"type": "actions", "elements": [{
                "type": "button", "text": {"type": "plain_text", "text": "Respond"},
                "url": url, "style": "primary"}]})
        title = request.feedback_type.value.replace("_", " ").title()
        self._send_slack_message({"text": f"{title} request: {request.prompt}",
                                  "blocks": blocks})

    def on_response_received(self, request: FeedbackRequest, response: FeedbackResponse) -> None:
        who = response.responded_by or "someone"
        self._send_slack_message({
            "text": f"Feedback received from {who}: {_describe(response)}",
            "blocks": [_section(f"*{_describe(response)}*\nResponded by: {who}"),
                       _context(f"ID: `{request.feedback_id}`")],
        })

    def on_request_timeout(self, request: FeedbackRequest) -> None:
        self._send_slack_message({
            "text": f"Feedback request timed out: {request.prompt}",
            "blocks": [_section(f"*Feedback request timed out*\n{request.prompt}"),
                       _context(f"No response after `{request.timeout}s` | "
                                f"ID: `{request.feedback_id}`")],
        })


def _describe(response: FeedbackResponse) -> str:
    value = response.value()
    if isinstance(value, bool):
        return "Approved" if value else "Rejected"
    return f"{response.response_type.value}: {str(value)[:100]}"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


__all__ = ["FeedbackHandler", "SlackFeedbackHandler", "WebhookFeedbackHandler"]
