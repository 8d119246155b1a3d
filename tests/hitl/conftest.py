"""Fixtures of the human-in-the-loop tests: stores in a temporary directory, and a
person answering from another thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from graflow_dist.hitl.manager import FEEDBACK_DIR_ENV, FeedbackManager
from graflow_dist.hitl.types import FeedbackRequest, make_response

ANSWER_WAIT_S = 20.0


@pytest.fixture(autouse=True)
def feedback_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Runs keep feedback under ``tmp_path/feedback`` and write default checkpoints
    under ``tmp_path/checkpoints`` (the working directory), never in the repository."""
    monkeypatch.chdir(tmp_path)
    directory = tmp_path / "feedback"
    monkeypatch.setenv(FEEDBACK_DIR_ENV, str(directory))
    return directory


@pytest.fixture
def reviewer(feedback_dir: Path) -> FeedbackManager:
    """The answering side: a manager of its own on the runs' directory store."""
    return FeedbackManager("filesystem", {"data_dir": str(feedback_dir)}, poll_interval=0.02)


class Person:
    """Answers pending requests from a thread, as someone at a terminal would."""

    def __init__(self, manager: FeedbackManager,
                 answer: Callable[[FeedbackRequest], dict[str, Any] | None]) -> None:
        self.manager = manager
        self.answer = answer
        self.answered: list[FeedbackRequest] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for request in self.manager.list_pending_requests():
                fields = self.answer(request)
                if fields is not None:
                    response = make_response(request, **fields)
                    if self.manager.provide_feedback(request.feedback_id, response):
                        self.answered.append(request)
            time.sleep(0.01)

    def __enter__(self) -> Person:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(ANSWER_WAIT_S)


@pytest.fixture
def person(reviewer: FeedbackManager) -> Callable[..., Person]:
    """``with person(lambda request: {"approved": True}): ...``"""
    return lambda answer: Person(reviewer, answer)


@pytest.fixture
def answered_requests(reviewer: FeedbackManager) -> Iterator[Callable[[], list[Any]]]:
    yield lambda: [r for r in reviewer.list_requests() if r.status == "completed"]
