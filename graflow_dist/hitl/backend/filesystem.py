"""Feedback kept as JSON files in a directory, written atomically, so another process
(a person's CLI, a web app, the resumed run) sees whole documents only."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import structlog

from graflow_dist.errors import FeedbackError
from graflow_dist.files import atomic_write, fsync_dir
from graflow_dist.hitl.backend.base import DEFAULT_RECENT_REQUESTS, FeedbackBackend
from graflow_dist.hitl.types import FeedbackRequest, FeedbackResponse, check_feedback_id

DEFAULT_FEEDBACK_DIR = "feedback_data"

log = structlog.get_logger(__name__)


class FilesystemFeedbackBackend(FeedbackBackend):
    """``DATA_DIR/requests/ID.json`` and ``DATA_DIR/responses/ID.json`` (Graflow's
    layout). Each write goes to a temporary file that is fsynced and renamed into
    place."""

    def __init__(self, data_dir: str | os.PathLike[str] = DEFAULT_FEEDBACK_DIR) -> None:
        self.data_dir = Path(data_dir)
        self.requests_dir = self.data_dir / "requests"
        self.responses_dir = self.data_dir / "responses"
        try:
            self.requests_dir.mkdir(parents=True, exist_ok=True)
            self.responses_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FeedbackError(f"feedback directory {self.data_dir}: cannot create it "
                                f"({exc.strerror or exc})") from None

    def store_request(self, request: FeedbackRequest) -> None:
        self._write(self.requests_dir, request.feedback_id, request.to_dict())

    def get_request(self, feedback_id: str) -> FeedbackRequest | None:
        return self._load(FeedbackRequest, self.requests_dir, feedback_id)

    def store_response(self, response: FeedbackResponse) -> None:
        self._write(self.responses_dir, response.feedback_id, response.to_dict())

    def get_response(self, feedback_id: str) -> FeedbackResponse | None:
        return self._load(FeedbackResponse, self.responses_dir, feedback_id)

    def list_requests(
        self, session_id: str | None = None, n_recent: int = DEFAULT_RECENT_REQUESTS
    ) -> list[FeedbackRequest]:
        found: list[FeedbackRequest] = []
        for path in self.requests_dir.glob("*.json"):
            try:
                request = self.get_request(path.stem)
            except FeedbackError as exc:  # one bad file must not hide the others
                log.warning("feedback_request_unreadable", path=str(path), error=str(exc))
                continue
            if request is not None and (session_id is None or request.session_id == session_id):
                found.append(request)
        found.sort(key=lambda r: r.created_at, reverse=True)
        return found[:n_recent]

    # --- files ------------------------------------------------------------------------

    def _path(self, directory: Path, feedback_id: str) -> Path:
        return directory / f"{check_feedback_id(feedback_id)}.json"

    def _write(self, directory: Path, feedback_id: str, document: dict[str, Any]) -> None:
        target = self._path(directory, feedback_id)
        payload = json.dumps(document, indent=2, ensure_ascii=False).encode("utf-8")
        atomic_write(target, payload)
        fsync_dir(directory)  # the rename itself survives a crash

    def _load(self, cls: Any, directory: Path, feedback_id: str) -> Any:
        path = self._path(directory, feedback_id)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise FeedbackError(f"feedback file {path}: cannot read it ({exc.strerror})") from None
        try:
            document = cls.from_dict(json.loads(raw))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FeedbackError(f"feedback file {path}: not valid JSON ({exc})") from None
        except FeedbackError as exc:
            raise FeedbackError(f"feedback file {path}: {exc}") from None
        if document.feedback_id != feedback_id:
            raise FeedbackError(
                f"feedback file {path}: holds feedback id {document.feedback_id!r}"
            )
        return document
