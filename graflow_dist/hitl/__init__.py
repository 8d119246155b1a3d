"""Human in the loop: a task asks a person and waits for the answer.

Tasks call ``ctx.request_feedback(...)`` (or ``request_approval``,
``request_text_input``, ``request_selection``); people answer through a
`FeedbackManager` on the same store (``provide_feedback``). Module paths and names are
Graflow's: ``graflow_dist.hitl.types``, ``.manager``, ``.handler``, ``.backend``.
"""

from graflow_dist.hitl.handler import (
    FeedbackHandler,
    SlackFeedbackHandler,
    WebhookFeedbackHandler,
)
from graflow_dist.hitl.manager import FeedbackManager, feedback_id_for
from graflow_dist.hitl.types import (
    FeedbackRequest,
    FeedbackResponse,
    FeedbackTimeoutError,
    FeedbackType,
)

__all__ = [
    "FeedbackHandler",
    "FeedbackManager",
    "FeedbackRequest",
    "FeedbackResponse",
    "FeedbackTimeoutError",
    "FeedbackType",
    "SlackFeedbackHandler",
    "WebhookFeedbackHandler",
    "feedback_id_for",
]
