"""OutageLog: one log line when Redis goes away, one when it is back, and the backoff
in between (not a traceback per retry)."""

from __future__ import annotations

import time
from typing import Any

DEFAULT_BACKOFF_START_S = 0.1
DEFAULT_BACKOFF_CAP_S = 2.0


class OutageLog:
    def __init__(self, logger: Any, component: str, level: str = "warning") -> None:
        self.log = logger
        self.component = component
        self._say = getattr(logger, level)
        self.since: float | None = None
        self.attempts = 0

    def failed(self, exc: BaseException) -> None:
        self.attempts += 1
        if self.since is None:
            self.since = time.monotonic()
            self._say("redis unavailable, reconnecting with backoff",
                             component=self.component, error=str(exc) or type(exc).__name__)

    def recovered(self) -> None:
        if self.since is not None:
            self._say("redis reachable again", component=self.component,
                             outage_s=round(time.monotonic() - self.since, 2),
                             attempts=self.attempts)
            self.since = None
            self.attempts = 0

    def backoff_s(self) -> float:
        return min(DEFAULT_BACKOFF_CAP_S, DEFAULT_BACKOFF_START_S * 2 ** min(self.attempts, 8))
