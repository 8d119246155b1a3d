"""Feedback requests and responses (Graflow's types and field names).

Both are plain dataclasses that validate themselves on creation and convert to and from
JSON-ready dicts, so every store (memory, a directory, Redis) holds the same documents.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from graflow_dist.errors import FeedbackTimeoutError, FeedbackValidationError

DEFAULT_FEEDBACK_TIMEOUT_S = 180.0

PENDING = "pending"
COMPLETED = "completed"
TIMEOUT = "timeout"
CANCELLED = "cancelled"
REQUEST_STATUSES = (PENDING, COMPLETED, TIMEOUT, CANCELLED)
ANSWERABLE = (PENDING, TIMEOUT)  # a late answer after a timeout is still taken

# Ids become file names and URL path segments: no separators, no leading dot.
_FEEDBACK_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")


class FeedbackType(Enum):
    """What kind of answer a request wants."""

    APPROVAL = "approval"
    TEXT = "text"
    SELECTION = "selection"
    MULTI_SELECTION = "multi_selection"
    CUSTOM = "custom"

    @classmethod
    def parse(cls, value: str | FeedbackType) -> FeedbackType:
        if isinstance(value, FeedbackType):
            return value
        try:
            return cls(value)
        except ValueError:
            known = ", ".join(repr(t.value) for t in cls)
            raise FeedbackValidationError(
                f"unknown feedback type {value!r}: use one of {known}"
            ) from None


SELECTION_TYPES = (FeedbackType.SELECTION, FeedbackType.MULTI_SELECTION)


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def check_feedback_id(feedback_id: Any) -> str:
    """``feedback_id`` if it is a safe id (letters, digits, ``_ - .``, at most 128)."""
    if not isinstance(feedback_id, str) or not _FEEDBACK_ID.fullmatch(feedback_id):
        raise FeedbackValidationError(
            f"invalid feedback id {feedback_id!r}: use 1-128 letters, digits, '_', '-' or "
            "'.', not starting with '.'"
        )
    return feedback_id


@dataclass
class FeedbackRequest:
    """A question to a human, stored until it is answered, times out or is cancelled."""

    feedback_id: str
    task_id: str
    session_id: str
    feedback_type: FeedbackType
    prompt: str
    options: list[str] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=now_iso)
    timeout: float = DEFAULT_FEEDBACK_TIMEOUT_S
    status: str = PENDING
    channel_key: str | None = None
    write_to_channel: bool = False

    def __post_init__(self) -> None:
        where = f"feedback request {self.feedback_id!r}"
        check_feedback_id(self.feedback_id)
        self.feedback_type = FeedbackType.parse(self.feedback_type)
        if not isinstance(self.prompt, str):
            raise FeedbackValidationError(f"{where}: prompt must be a string, got "
                                          f"{type(self.prompt).__name__}")
        self.options = _check_options(self.feedback_type, self.options, where)
        if not isinstance(self.metadata, dict):
            raise FeedbackValidationError(f"{where}: metadata must be a dict")
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, int | float) \
                or not self.timeout > 0:
            raise FeedbackValidationError(
                f"{where}: timeout must be a positive number of seconds, got {self.timeout!r}"
            )
        self.timeout = float(self.timeout)
        if self.status not in REQUEST_STATUSES:
            raise FeedbackValidationError(
                f"{where}: status {self.status!r} is not one of {', '.join(REQUEST_STATUSES)}"
            )
        if self.channel_key is not None and not isinstance(self.channel_key, str):
            raise FeedbackValidationError(f"{where}: channel_key must be a string")
        if self.write_to_channel and not self.channel_key:
            raise FeedbackValidationError(
                f"{where}: write_to_channel=True needs a channel_key to write the answer to"
            )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["feedback_type"] = self.feedback_type.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeedbackRequest:
        return _from_fields(cls, data, "feedback request")


@dataclass
class FeedbackResponse:
    """A human's answer; which fields are set depends on ``response_type``."""

    feedback_id: str
    response_type: FeedbackType
    approved: bool | None = None
    reason: str | None = None
    text: str | None = None
    selected: str | None = None
    selected_multiple: list[str] | None = None
    custom_data: dict[str, Any] | None = None
    responded_at: str = field(default_factory=now_iso)
    responded_by: str | None = None

    def __post_init__(self) -> None:
        check_feedback_id(self.feedback_id)
        self.response_type = FeedbackType.parse(self.response_type)

    def value(self) -> Any:
        """The answer itself: what ``write_to_channel`` stores under ``channel_key``."""
        return {
            FeedbackType.APPROVAL: self.approved,
            FeedbackType.TEXT: self.text,
            FeedbackType.SELECTION: self.selected,
            FeedbackType.MULTI_SELECTION: self.selected_multiple,
            FeedbackType.CUSTOM: self.custom_data,
        }[self.response_type]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["response_type"] = self.response_type.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeedbackResponse:
        return _from_fields(cls, data, "feedback response")


def validate_response(request: FeedbackRequest, response: FeedbackResponse) -> None:
    """Raise `FeedbackValidationError` unless ``response`` answers ``request``."""
    where = f"response to feedback request {request.feedback_id!r}"
    if response.feedback_id != request.feedback_id:
        raise FeedbackValidationError(f"{where}: it names feedback id {response.feedback_id!r}")
    kind = request.feedback_type
    if response.response_type is not kind:
        raise FeedbackValidationError(
            f"{where}: the request asks for {kind.value!r}, the response is "
            f"{response.response_type.value!r}"
        )
    options = request.options or []
    if kind is FeedbackType.APPROVAL and not isinstance(response.approved, bool):
        raise FeedbackValidationError(f"{where}: approved must be True or False")
    if kind is FeedbackType.TEXT and not isinstance(response.text, str):
        raise FeedbackValidationError(f"{where}: text must be a string")
    if kind is FeedbackType.SELECTION and response.selected not in options:
        raise FeedbackValidationError(
            f"{where}: selected must be one of {options}, got {response.selected!r}"
        )
    if kind is FeedbackType.MULTI_SELECTION:
        chosen = response.selected_multiple
        if not isinstance(chosen, list) or any(c not in options for c in chosen):
            raise FeedbackValidationError(
                f"{where}: selected_multiple must be a list of options from {options}, "
                f"got {chosen!r}"
            )
    if kind is FeedbackType.CUSTOM and not isinstance(response.custom_data, dict):
        raise FeedbackValidationError(f"{where}: custom_data must be a dict")


def make_response(request: FeedbackRequest, **fields_: Any) -> FeedbackResponse:
    """A validated response to ``request`` from its answer fields (``approved=``,
    ``reason=``, ``text=``, ``selected=``, ``selected_multiple=``, ``custom_data=``,
    ``responded_by=``)."""
    response = FeedbackResponse(
        feedback_id=request.feedback_id, response_type=request.feedback_type, **fields_
    )
    validate_response(request, response)
    return response


def _check_options(kind: FeedbackType, options: Any, where: str) -> list[str] | None:
    if options is None:
        if kind in SELECTION_TYPES:
            raise FeedbackValidationError(
                f"{where}: a {kind.value} request needs options (a list of strings)"
            )
        return None
    if not isinstance(options, list | tuple) or not all(isinstance(o, str) for o in options):
        raise FeedbackValidationError(f"{where}: options must be a list of strings")
    if kind in SELECTION_TYPES and not options:
        raise FeedbackValidationError(f"{where}: a {kind.value} request needs at least one "
                                      "option")
    if len(set(options)) != len(options):
        raise FeedbackValidationError(f"{where}: options must be distinct, got {list(options)}")
    return list(options)


def _from_fields(cls: Any, data: Any, what: str) -> Any:
    if not isinstance(data, dict):
        raise FeedbackValidationError(f"{what}: expected a JSON object, got "
                                      f"{type(data).__name__}")
    names = {f.name for f in fields(cls)}
    try:
        return cls(**{k: v for k, v in data.items() if k in names})
    except TypeError as exc:  # a required field is missing
        raise FeedbackValidationError(f"{what}: {exc}") from None


__all__ = [
    "CANCELLED",
    "COMPLETED",
    "DEFAULT_FEEDBACK_TIMEOUT_S",
    "FeedbackRequest",
    "FeedbackResponse",
    "FeedbackTimeoutError",
    "FeedbackType",
    "PENDING",
    "TIMEOUT",
    "check_feedback_id",
    "make_response",
    "validate_response",
]
