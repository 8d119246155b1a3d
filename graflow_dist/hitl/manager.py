"""FeedbackManager: asks a human, waits for the answer, records it (Graflow's API).

How a task waits when nobody answered yet is one method, `FeedbackManager.wait_for_response`:
in process it polls the store until the request's timeout. A cluster worker swaps in a
manager whose `wait_for_response` parks the task instead, so a waiting task holds no
worker. Feedback ids are deterministic per task execution point (`feedback_id_for`), so a
task that runs again (after a resume or a re-dispatch) finds its stored answer at once.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

from graflow_dist.channels.base import Channel
from graflow_dist.errors import FeedbackCancelledError, FeedbackError, FeedbackTimeoutError
from graflow_dist.hitl.backend.base import DEFAULT_RECENT_REQUESTS, FeedbackBackend
from graflow_dist.hitl.backend.filesystem import DEFAULT_FEEDBACK_DIR, FilesystemFeedbackBackend
from graflow_dist.hitl.backend.memory import MemoryFeedbackBackend
from graflow_dist.hitl.handler import FeedbackHandler
from graflow_dist.hitl.types import (
    ANSWERABLE,
    CANCELLED,
    COMPLETED,
    DEFAULT_FEEDBACK_TIMEOUT_S,
    PENDING,
    TIMEOUT,
    FeedbackRequest,
    FeedbackResponse,
    FeedbackType,
    check_feedback_id,
    validate_response,
)

DEFAULT_POLL_INTERVAL_S = 0.5
FEEDBACK_DIR_ENV = "GRAFLOW_DIST_FEEDBACK_DIR"
RESPONSE_KEY_SUFFIX = ".__feedback_response__"

BackendFactory = Callable[[dict[str, Any]], FeedbackBackend]

log = structlog.get_logger(__name__)

_BACKENDS: dict[str, BackendFactory] = {
    "filesystem": lambda config: FilesystemFeedbackBackend(
        config.get("data_dir", DEFAULT_FEEDBACK_DIR)),
    "memory": lambda config: MemoryFeedbackBackend(),
}


def register_backend(name: str, factory: BackendFactory) -> None:
    """Make ``FeedbackManager(backend=name, backend_config=...)`` build its store with
    ``factory(backend_config)`` (how the Redis store plugs in)."""
    _BACKENDS[name] = factory


def create_backend(backend: str | FeedbackBackend,
                   backend_config: dict[str, Any] | None = None) -> FeedbackBackend:
    if isinstance(backend, FeedbackBackend):
        return backend
    factory = _BACKENDS.get(backend)
    if factory is None:
        known = ", ".join(repr(n) for n in sorted(_BACKENDS))
        hint = (" (the Redis store comes with the cluster runtime and is not loaded in this "
                "process)" if backend == "redis" else "")
        raise FeedbackError(
            f"unknown feedback backend {backend!r}{hint}: use one of {known} or pass a "
            "FeedbackBackend instance"
        )
    return factory(dict(backend_config or {}))


def feedback_id_for(session_id: str, task_id: str, cycle: int, index: int) -> str:
    """The id of the ``index``-th feedback request (0-based) made by run ``cycle`` of
    ``task_id`` in session ``session_id``: the same on every re-run of that point."""
    point = f"{session_id}\x00{task_id}\x00{cycle}\x00{index}".encode()
    return hashlib.sha256(point).hexdigest()[:16]


def default_feedback_manager(channel: Channel | None = None) -> FeedbackManager:
    """The store a run uses unless told otherwise: the directory named by
    ``GRAFLOW_DIST_FEEDBACK_DIR``, else ``./feedback_data`` (Graflow's default)."""
    data_dir = os.environ.get(FEEDBACK_DIR_ENV) or DEFAULT_FEEDBACK_DIR
    return FeedbackManager("filesystem", {"data_dir": data_dir}, channel_manager=channel)


def write_answer(channel: Channel, request: FeedbackRequest, response: FeedbackResponse) -> None:
    """Graflow's channel integration: the answer under ``channel_key`` and the whole
    response under ``channel_key + ".__feedback_response__"``."""
    if not (request.write_to_channel and request.channel_key):
        return
    channel.set(request.channel_key, response.value())
    channel.set(request.channel_key + RESPONSE_KEY_SUFFIX, response.to_dict())


class FeedbackManager:
    """Creates feedback requests, waits for their answers and records answers.

    Parameters
    ----------
    backend:
        ``"filesystem"`` (default), ``"memory"``, a name given to `register_backend`, or a
        `FeedbackBackend` instance (share one instance between the asking and the
        answering side for the memory store).
    backend_config:
        Options of a named backend, e.g. ``{"data_dir": "feedback_data"}``.
    channel_manager:
        The channel answers are written to (``write_to_channel=True``).
    poll_interval:
        Seconds between checks while waiting, for stores that cannot notify.
    """

    def __init__(
        self,
        backend: str | FeedbackBackend = "filesystem",
        backend_config: dict[str, Any] | None = None,
        channel_manager: Channel | None = None,
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL_S,
    ) -> None:
        self._backend = create_backend(backend, backend_config)
        self.channel_manager = channel_manager
        self.poll_interval = poll_interval

    @property
    def backend(self) -> FeedbackBackend:
        return self._backend

    # --- asking -----------------------------------------------------------------------

    def request_feedback(
        self,
        task_id: str,
        session_id: str,
        feedback_type: FeedbackType | str,
        prompt: str,
        options: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        timeout: float = DEFAULT_FEEDBACK_TIMEOUT_S,
        channel_key: str | None = None,
        write_to_channel: bool = False,
        feedback_id: str | None = None,
        handler: FeedbackHandler | None = None,
        *,
        channel: Channel | None = None,
    ) -> FeedbackResponse:
        """Ask and wait; returns the answer, or raises `FeedbackTimeoutError`.

        With ``feedback_id`` of a request that was answered already (a re-run), the
        stored answer is returned at once. ``channel`` overrides ``channel_manager`` as
        the channel the answer is written to.
        """
        request = FeedbackRequest(
            feedback_id=check_feedback_id(feedback_id or secrets.token_hex(8)),
            task_id=task_id,
            session_id=session_id,
            feedback_type=feedback_type,  # type: ignore[arg-type]  # parsed on creation
            prompt=prompt,
            options=options,
            metadata=dict(metadata or {}),
            timeout=timeout,
            channel_key=channel_key,
            write_to_channel=write_to_channel,
        )
        target = channel if channel is not None else self.channel_manager
        stored = self._backend.get_request(request.feedback_id)
        answer = self._backend.get_response(request.feedback_id)
        if answer is not None:
            self._complete(stored or request, answer, target)
            return answer
        if stored is not None and stored.status == CANCELLED:
            raise FeedbackCancelledError(request.feedback_id)
        if stored is not None:
            request.created_at = stored.created_at  # asked first then
        self._backend.store_request(request)
        if stored is None or stored.status != PENDING:
            _call(handler, "on_request_created", request)

        answer = self.wait_for_response(request)

        if answer is None:
            request.status = TIMEOUT
            self._backend.store_request(request)
            _call(handler, "on_request_timeout", request)
            raise FeedbackTimeoutError(request.feedback_id, request.timeout)
        self._complete(request, answer, target)
        _call(handler, "on_response_received", request, answer)
        return answer

    def wait_for_response(self, request: FeedbackRequest) -> FeedbackResponse | None:
        """The "no answer yet" policy: block, checking the store every
        ``poll_interval`` seconds (sooner when the store notifies), until an answer
        arrives (returned) or ``request.timeout`` passes (None). Override to wait
        differently, e.g. to park the task."""
        deadline = time.monotonic() + request.timeout
        wake = threading.Event()
        self._backend.start_listener(request.feedback_id, wake)
        while True:
            answer = self._backend.get_response(request.feedback_id)
            if answer is not None:
                return answer
            current = self._backend.get_request(request.feedback_id)
            if current is not None and current.status == CANCELLED:
                raise FeedbackCancelledError(request.feedback_id)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            wake.wait(min(self.poll_interval, left))
            wake.clear()

    def _complete(self, request: FeedbackRequest, answer: FeedbackResponse,
                  channel: Channel | None) -> None:
        if request.status != COMPLETED:
            request.status = COMPLETED
            self._backend.store_request(request)
        if channel is not None:
            write_answer(channel, request, answer)

    # --- answering ----------------------------------------------------------------------

    def provide_feedback(self, feedback_id: str, response: FeedbackResponse) -> bool:
        """Record ``response`` as the answer to ``feedback_id``.

        Returns False if there is no such request or it is no longer open (answered
        or cancelled); raises `FeedbackValidationError` if ``response`` does not fit
        the request (wrong type, an option that was not offered, ...).
        """
        request = self._backend.get_request(check_feedback_id(feedback_id))
        if request is None:
            log.warning("feedback_unknown", feedback_id=feedback_id)
            return False
        if request.status not in ANSWERABLE:
            log.warning("feedback_not_open", feedback_id=feedback_id, status=request.status)
            return False
        validate_response(request, response)
        self._backend.store_response(response)
        request.status = COMPLETED
        self._backend.store_request(request)
        if self.channel_manager is not None:
            write_answer(self.channel_manager, request, response)
        self._backend.publish(feedback_id)
        return True

    def cancel_request(self, feedback_id: str) -> bool:
        """Cancel an open request: its task gets `FeedbackCancelledError` instead of an
        answer (at once, when it is parked on a cluster). False if there is no such
        request or it is no longer open."""
        request = self._backend.get_request(check_feedback_id(feedback_id))
        if request is None or request.status not in ANSWERABLE:
            return False
        request.status = CANCELLED
        self._backend.store_request(request)
        self._backend.publish(feedback_id)
        return True

    # --- reading and storing (Graflow's pass-throughs) ------------------------------------

    def list_pending_requests(self, session_id: str | None = None) -> list[FeedbackRequest]:
        return self._backend.list_pending_requests(session_id)

    def list_requests(self, session_id: str | None = None,
                      n_recent: int = DEFAULT_RECENT_REQUESTS) -> list[FeedbackRequest]:
        return self._backend.list_requests(session_id, n_recent)

    def get_request(self, feedback_id: str) -> FeedbackRequest | None:
        return self._backend.get_request(check_feedback_id(feedback_id))

    def get_response(self, feedback_id: str) -> FeedbackResponse | None:
        return self._backend.get_response(check_feedback_id(feedback_id))

    def store_request(self, request: FeedbackRequest) -> None:
        self._backend.store_request(request)

    def store_response(self, response: FeedbackResponse) -> None:
        self._backend.store_response(response)

    def close(self) -> None:
        self._backend.close()


def _call(handler: FeedbackHandler | None, method: str, *args: Any) -> None:
    if handler is None:
        return
    try:
        getattr(handler, method)(*args)
    except Exception as exc:  # a notification must not fail the task (Graflow's rule)
        log.error("feedback_handler_failed", handler=type(handler).__name__, callback=method,
                  error=f"{type(exc).__name__}: {exc}")


__all__ = [
    "DEFAULT_POLL_INTERVAL_S",
    "FEEDBACK_DIR_ENV",
    "FeedbackManager",
    "create_backend",
    "default_feedback_manager",
    "feedback_id_for",
    "register_backend",
    "write_answer",
]
