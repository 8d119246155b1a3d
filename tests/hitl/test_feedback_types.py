"""Feedback requests and responses validate at the edge and round-trip as JSON."""

from __future__ import annotations

import json

import pytest

from graflow_dist.errors import FeedbackTimeoutError, FeedbackValidationError, error_from_name
from graflow_dist.hitl.types import (
    FeedbackRequest,
    FeedbackResponse,
    FeedbackType,
    make_response,
    validate_response,
)


def request(kind: str = "approval", **extra: object) -> FeedbackRequest:
    return FeedbackRequest(feedback_id="fb1", task_id="t", session_id="s",
                           feedback_type=kind, prompt="ok?", **extra)  # type: ignore[arg-type]


def test_request_round_trips_through_json() -> None:
    original = request("multi_selection", options=["a", "b"], metadata={"n": [1]},
                       channel_key="picked", write_to_channel=True, timeout=5)
    again = FeedbackRequest.from_dict(json.loads(json.dumps(original.to_dict())))
    assert again == original
    assert again.feedback_type is FeedbackType.MULTI_SELECTION
    assert original.to_dict()["feedback_type"] == "multi_selection"


def test_response_round_trips_and_ignores_unknown_fields() -> None:
    original = FeedbackResponse("fb1", FeedbackType.TEXT, text="hi", responded_by="ann")
    data = {**original.to_dict(), "added_later": 1}
    assert FeedbackResponse.from_dict(json.loads(json.dumps(data))) == original


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"feedback_type": "vote"}, "unknown feedback type 'vote': use one of 'approval'"),
        ({"feedback_type": "selection"}, "a selection request needs options"),
        ({"feedback_type": "multi_selection", "options": []}, "needs at least one option"),
        ({"feedback_type": "selection", "options": ["a", "a"]}, "options must be distinct"),
        ({"feedback_type": "selection", "options": "ab"}, "options must be a list of strings"),
        ({"timeout": 0}, "timeout must be a positive number"),
        ({"timeout": "soon"}, "timeout must be a positive number"),
        ({"write_to_channel": True}, "write_to_channel=True needs a channel_key"),
        ({"prompt": 3}, "prompt must be a string"),
        ({"status": "done"}, "status 'done' is not one of"),
        ({"feedback_id": "../etc/passwd"}, "invalid feedback id '../etc/passwd'"),
        ({"feedback_id": ".hidden"}, "invalid feedback id"),
    ],
)
def test_bad_requests_are_refused_with_the_reason(kwargs: dict, message: str) -> None:
    fields = {"feedback_id": "fb1", "task_id": "t", "session_id": "s",
              "feedback_type": "approval", "prompt": "ok?", **kwargs}
    with pytest.raises(FeedbackValidationError, match="feedback") as raised:
        FeedbackRequest(**fields)
    assert message in str(raised.value)
    assert isinstance(raised.value, ValueError)  # what Graflow raises for a bad type


def test_a_document_missing_fields_is_refused() -> None:
    with pytest.raises(FeedbackValidationError, match="feedback request: .*prompt"):
        FeedbackRequest.from_dict({"feedback_id": "x", "task_id": "t", "session_id": "s",
                                   "feedback_type": "text"})
    with pytest.raises(FeedbackValidationError, match="expected a JSON object, got list"):
        FeedbackResponse.from_dict([])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "options", "fields", "message"),
    [
        ("approval", None, {"approved": None}, "approved must be True or False"),
        ("approval", None, {"approved": "yes"}, "approved must be True or False"),
        ("text", None, {}, "text must be a string"),
        ("selection", ["a", "b"], {"selected": "c"}, "selected must be one of ['a', 'b']"),
        ("multi_selection", ["a", "b"], {"selected_multiple": ["a", "z"]},
         "selected_multiple must be a list of options"),
        ("multi_selection", ["a"], {"selected_multiple": "a"}, "must be a list"),
        ("custom", None, {"custom_data": [1]}, "custom_data must be a dict"),
    ],
)
def test_responses_must_answer_their_request(kind: str, options: list[str] | None,
                                             fields: dict, message: str) -> None:
    req = request(kind, options=options)
    with pytest.raises(FeedbackValidationError) as raised:
        make_response(req, **fields)
    assert message in str(raised.value)
    assert "response to feedback request 'fb1'" in str(raised.value)


def test_response_of_another_type_or_id_is_refused() -> None:
    req = request("approval")
    with pytest.raises(FeedbackValidationError, match="asks for 'approval', the response is"):
        validate_response(req, FeedbackResponse("fb1", "text", text="x"))  # type: ignore[arg-type]
    with pytest.raises(FeedbackValidationError, match="names feedback id 'other'"):
        validate_response(req, FeedbackResponse("other", "approval", approved=True))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "options", "fields", "value"),
    [
        ("approval", None, {"approved": False, "reason": "no"}, False),
        ("text", None, {"text": "hello"}, "hello"),
        ("selection", ["a", "b"], {"selected": "b"}, "b"),
        ("multi_selection", ["a", "b"], {"selected_multiple": ["b", "a"]}, ["b", "a"]),
        ("custom", None, {"custom_data": {"k": 1}}, {"k": 1}),
    ],
)
def test_value_is_the_answer_of_each_type(kind: str, options: list[str] | None,
                                          fields: dict, value: object) -> None:
    assert make_response(request(kind, options=options), **fields).value() == value


def test_timeout_error_has_graflows_message_and_crosses_processes() -> None:
    error = FeedbackTimeoutError("fb1", 2.5)
    assert str(error) == "Feedback request fb1 timed out after 2.5 seconds"
    import pickle

    again = pickle.loads(pickle.dumps(error))
    assert (again.feedback_id, again.timeout, str(again)) == ("fb1", 2.5, str(error))
    rebuilt = error_from_name("FeedbackTimeoutError", str(error), {"feedback_id": "fb1",
                                                                    "timeout": 2.5})
    assert isinstance(rebuilt, FeedbackTimeoutError) and rebuilt.feedback_id == "fb1"
