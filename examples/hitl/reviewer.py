"""The person in the examples: answers feedback requests from a thread.

In process, the examples' runs keep their requests in a directory
(``GRAFLOW_DIST_FEEDBACK_DIR``) and the reviewer answers through a `FeedbackManager`
on the same directory, as ``graflow-dist feedback respond`` or the web form would.
With ``GRAFLOW_DIST_CLUSTER`` set it answers through the cluster's client
(``Client.pending_feedback`` / ``Client.respond``). With ``interactive=True`` it asks
you at the terminal instead of answering by itself.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from graflow_dist.hitl.manager import FEEDBACK_DIR_ENV, FeedbackManager
from graflow_dist.hitl.types import FeedbackRequest, FeedbackType, make_response

Answer = Callable[[FeedbackRequest], dict[str, Any] | None]
POLL_S = 0.05


class FeedbackDesk:
    """Where people see pending requests and answer them."""

    def __init__(self) -> None:
        cluster = os.environ.get("GRAFLOW_DIST_CLUSTER")
        self._client: Any = None
        self._manager: FeedbackManager | None = None
        if cluster:
            from graflow_dist.client import Client

            self._client = Client(None if cluster == "1" else cluster)
            if not hasattr(self._client, "pending_feedback"):
                raise SystemExit("this cluster client has no feedback API yet "
                                 "(Client.pending_feedback / Client.respond)")
        else:
            self._manager = FeedbackManager("filesystem",
                                            {"data_dir": os.environ[FEEDBACK_DIR_ENV]})

    def pending(self) -> list[FeedbackRequest]:
        if self._client is not None:
            return list(self._client.pending_feedback())
        assert self._manager is not None
        return self._manager.list_pending_requests() + [
            r for r in self._manager.list_requests() if r.status == "timeout"]

    def respond(self, request: FeedbackRequest, **fields: Any) -> None:
        response = make_response(request, **fields)
        if self._client is not None:
            self._client.respond(request.feedback_id, response)
        else:
            assert self._manager is not None
            self._manager.provide_feedback(request.feedback_id, response)


def ask_terminal(request: FeedbackRequest) -> dict[str, Any]:
    """Ask the person at the terminal for the answer to ``request``."""
    print(f"\n[{request.feedback_id}] {request.prompt}")
    kind = request.feedback_type
    if kind is FeedbackType.APPROVAL:
        return {"approved": input("approve? [y/N] ").strip().lower().startswith("y")}
    if kind is FeedbackType.TEXT:
        return {"text": input("your answer: ")}
    options = request.options or []
    for number, option in enumerate(options, 1):
        print(f"  {number}. {option}")
    picks = [options[int(n) - 1] for n in input("number(s): ").replace(",", " ").split()]
    if kind is FeedbackType.MULTI_SELECTION:
        return {"selected_multiple": picks}
    return {"selected": picks[0]}


class Reviewer:
    """Answers each new request with ``answer(request)`` (its fields; None: skip),
    after ``delay_s``, from a background thread."""

    def __init__(self, answer: Answer, *, delay_s: float = 0.0,
                 interactive: bool = False) -> None:
        self.answer = ask_terminal if interactive else answer
        self.delay_s = delay_s
        self.desk = FeedbackDesk()
        self.answered: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        seen: set[str] = set()
        while not self._stop.is_set():
            for request in self.desk.pending():
                if request.feedback_id in seen:
                    continue
                seen.add(request.feedback_id)
                if self._stop.wait(self.delay_s):
                    return
                fields = self.answer(request)
                if fields is not None:
                    self.desk.respond(request, **fields)
                    self.answered.append(request.feedback_id)
                    print(f"  reviewer: answered {request.prompt!r} with {fields}")
            time.sleep(POLL_S)

    def wait_for_answers(self, count: int, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.answered) < count and time.monotonic() < deadline:
            time.sleep(POLL_S)

    def __enter__(self) -> Reviewer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
