"""FeedbackManager on its own: asking, waiting, answering, timeouts, handlers, the
channel integration and the "no answer yet" hook."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from graflow_dist.channels.memory import MemoryChannel
from graflow_dist.errors import FeedbackError, FeedbackTimeoutError, FeedbackValidationError
from graflow_dist.hitl import FeedbackHandler, FeedbackManager, WebhookFeedbackHandler
from graflow_dist.hitl.backend import MemoryFeedbackBackend
from graflow_dist.hitl.handler import SlackFeedbackHandler
from graflow_dist.hitl.manager import feedback_id_for, register_backend
from graflow_dist.hitl.types import FeedbackRequest, FeedbackResponse, FeedbackType, make_response


class Recorder(FeedbackHandler):
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def on_request_created(self, request: FeedbackRequest) -> None:
        self.events.append(("created", request.status))

    def on_response_received(self, request: FeedbackRequest, response: FeedbackResponse) -> None:
        self.events.append(("received", str(response.value())))

    def on_request_timeout(self, request: FeedbackRequest) -> None:
        self.events.append(("timeout", request.status))


def ask(manager: FeedbackManager, **kwargs: Any) -> FeedbackResponse:
    fields = {"task_id": "t", "session_id": "s", "feedback_type": "approval",
              "prompt": "ship it?", "timeout": 5.0, "feedback_id": "fb1", **kwargs}
    return manager.request_feedback(**fields)


def answer_soon(manager: FeedbackManager, feedback_id: str, **fields: Any) -> threading.Thread:
    def run() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            request = manager.get_request(feedback_id)
            if request is not None and request.status == "pending":
                manager.provide_feedback(feedback_id, make_response(request, **fields))
                return
            time.sleep(0.005)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_an_answer_from_another_thread_wakes_the_wait_at_once() -> None:
    manager = FeedbackManager(MemoryFeedbackBackend(), poll_interval=30)
    recorder = Recorder()
    thread = answer_soon(manager, "fb1", approved=True, reason="fine")
    started = time.monotonic()
    response = ask(manager, handler=recorder)
    thread.join()
    # The memory store notifies: no 30 s poll interval was waited out.
    assert time.monotonic() - started < 5
    assert (response.approved, response.reason) == (True, "fine")
    assert recorder.events == [("created", "pending"), ("received", "True")]
    assert manager.get_request("fb1").status == "completed"


def test_timeout_raises_marks_the_request_and_calls_the_handler() -> None:
    manager = FeedbackManager("memory", poll_interval=0.01)
    recorder = Recorder()
    started = time.monotonic()
    with pytest.raises(FeedbackTimeoutError) as raised:
        ask(manager, timeout=0.2, handler=recorder)
    assert 0.2 <= time.monotonic() - started < 3
    assert (raised.value.feedback_id, raised.value.timeout) == ("fb1", 0.2)
    assert manager.get_request("fb1").status == "timeout"
    assert recorder.events == [("created", "pending"), ("timeout", "timeout")]
    # A late answer is still taken, and the next ask returns it without waiting.
    request = manager.get_request("fb1")
    assert manager.provide_feedback("fb1", make_response(request, approved=False))
    again = Recorder()
    assert ask(manager, timeout=60, handler=again).approved is False
    assert again.events == []


def test_asking_again_while_pending_keeps_the_first_time_and_does_not_renotify() -> None:
    manager = FeedbackManager("memory", poll_interval=0.01)
    with pytest.raises(FeedbackTimeoutError):
        ask(manager, timeout=0.05)
    first = manager.get_request("fb1").created_at
    recorder = Recorder()
    with pytest.raises(FeedbackTimeoutError):
        ask(manager, timeout=0.05, handler=recorder)
    assert manager.get_request("fb1").created_at == first
    # It had timed out, so asking again is a new notification.
    assert recorder.events == [("created", "pending"), ("timeout", "timeout")]


def test_provide_feedback_refuses_unknown_closed_and_wrong_answers() -> None:
    manager = FeedbackManager("memory", poll_interval=0.01)
    response = FeedbackResponse("nope", FeedbackType.APPROVAL, approved=True)
    assert manager.provide_feedback("nope", response) is False
    thread = answer_soon(manager, "fb1", selected="b")
    assert ask(manager, feedback_type="selection", options=["a", "b"]).selected == "b"
    thread.join()
    # Answered already: a second answer is refused, the first stays.
    assert manager.provide_feedback(
        "fb1", FeedbackResponse("fb1", FeedbackType.SELECTION, selected="a")) is False
    assert manager.get_response("fb1").selected == "b"
    with pytest.raises(FeedbackTimeoutError):
        ask(manager, feedback_id="fb2", feedback_type="selection", options=["a"], timeout=0.01)
    with pytest.raises(FeedbackValidationError, match="selected must be one of"):
        manager.provide_feedback(
            "fb2", FeedbackResponse("fb2", FeedbackType.SELECTION, selected="zzz"))
    assert manager.get_response("fb2") is None


def test_the_answer_is_written_to_the_channel_key() -> None:
    channel = MemoryChannel("run")
    manager = FeedbackManager("memory", channel_manager=channel, poll_interval=0.01)
    thread = answer_soon(manager, "fb1", text="looks good")
    ask(manager, feedback_type="text", channel_key="review", write_to_channel=True)
    thread.join()
    assert channel.get("review") == "looks good"
    assert channel.get("review.__feedback_response__")["text"] == "looks good"
    # Without write_to_channel nothing is written.
    other = MemoryChannel("other")
    thread = answer_soon(manager, "fb2", text="x")
    ask(manager, feedback_id="fb2", feedback_type="text", channel_key="k", channel=other)
    thread.join()
    assert other.keys() == []


def test_a_failing_handler_does_not_fail_the_request() -> None:
    class Broken(FeedbackHandler):
        def on_request_created(self, request: FeedbackRequest) -> None:
            raise RuntimeError("smtp down")

    manager = FeedbackManager("memory", poll_interval=0.01)
    thread = answer_soon(manager, "fb1", approved=True)
    assert ask(manager, handler=Broken()).approved is True
    thread.join()


def test_wait_for_response_is_the_one_hook_for_no_answer_yet() -> None:
    """A cluster worker parks instead of blocking by overriding this one method."""

    class Park(Exception):
        pass

    class ParkingManager(FeedbackManager):
        def wait_for_response(self, request: FeedbackRequest) -> FeedbackResponse | None:
            raise Park(request.feedback_id)

    manager = ParkingManager("memory")
    recorder = Recorder()
    with pytest.raises(Park):
        ask(manager, handler=recorder)
    assert manager.get_request("fb1").status == "pending"
    assert recorder.events == [("created", "pending")]
    manager.provide_feedback("fb1", make_response(manager.get_request("fb1"), approved=True))
    assert ask(manager).approved is True  # the re-run gets the stored answer


def test_feedback_ids_are_fixed_by_the_execution_point() -> None:
    one = feedback_id_for("s", "t", 0, 0)
    assert one == feedback_id_for("s", "t", 0, 0)
    assert len({one, feedback_id_for("s2", "t", 0, 0), feedback_id_for("s", "u", 0, 0),
                feedback_id_for("s", "t", 1, 0), feedback_id_for("s", "t", 0, 1)}) == 5
    assert len(one) == 16 and int(one, 16) >= 0


def test_backends_by_name_and_a_registered_one() -> None:
    with pytest.raises(FeedbackError, match="unknown feedback backend 'redis' .*cluster runtime"):
        FeedbackManager("redis")
    shared = MemoryFeedbackBackend()
    register_backend("shared-test-store", lambda config: shared)
    assert FeedbackManager("shared-test-store").backend is shared
    with pytest.raises(FeedbackValidationError, match="invalid feedback id"):
        FeedbackManager("memory").get_request("../../x")


class Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers["Content-Length"])
        Hook.received.append({"body": json.loads(self.rfile.read(length)),
                              "auth": self.headers.get("Authorization")})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def webhook_url() -> Iterator[str]:
    Hook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_handler_posts_each_event(webhook_url: str) -> None:
    manager = FeedbackManager("memory", poll_interval=0.01)
    handler = WebhookFeedbackHandler(webhook_url, headers={"Authorization": "Bearer t"})
    thread = answer_soon(manager, "fb1", approved=True, responded_by="ann")
    ask(manager, handler=handler)
    thread.join()
    with pytest.raises(FeedbackTimeoutError):
        ask(manager, feedback_id="fb2", timeout=0.01, handler=handler)
    kinds = [h["body"]["event_type"] for h in Hook.received]
    assert kinds == ["request_created", "response_received", "request_created",
                     "request_timeout"]
    created, received = Hook.received[0]["body"], Hook.received[1]["body"]
    assert (created["feedback_id"], created["prompt"], created["feedback_type"]) == \
        ("fb1", "ship it?", "approval")
    assert received["response"]["approved"] is True
    assert received["response"]["responded_by"] == "ann"
    assert {h["auth"] for h in Hook.received} == {"Bearer t"}


def test_slack_handler_links_the_form(webhook_url: str) -> None:
    handler = SlackFeedbackHandler(webhook_url, channel="#ops",
                                   feedback_ui_url="https://ui/feedback/{feedback_id}")
    request = FeedbackRequest("fb1", "deploy", "s", FeedbackType.APPROVAL, "Deploy?")
    handler.on_request_created(request)
    handler.on_response_received(request, make_response(request, approved=False))
    first, second = (h["body"] for h in Hook.received)
    assert first["channel"] == "#ops"
    assert first["blocks"][-1]["elements"][0]["url"] == "https://ui/feedback/fb1"
    assert "Rejected" in second["text"]


def test_an_unreachable_webhook_is_logged_not_raised() -> None:
    handler = WebhookFeedbackHandler("http://127.0.0.1:9/nothing-listens", timeout=1)
    assert handler._send_webhook("request_created", {}) is False
