"""ConsoleSettings: where the console reads from and who may use it."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from graflow_dist.checkpoint.stores import DEFAULT_CHECKPOINT_DIR
from graflow_dist.errors import ConsoleAccessError

TOKEN_ENV = "GRAFLOW_DIST_UI_TOKEN"
CHECKPOINT_DIR_ENV = "GRAFLOW_DIST_CHECKPOINT_DIR"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
# How often live views (server-sent events) look for changes.
DEFAULT_POLL_S = 1.0
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def is_loopback(host: str) -> bool:
    """True for names and addresses that only this machine can reach."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ConsoleSettings:
    """Parameters
    ----------
    redis_url:
        The cluster's Redis (default ``GRAFLOW_DIST_REDIS_URL``).
    prefix:
        Deployment prefix (default ``GRAFLOW_DIST_PREFIX`` or ``graflow``).
    token:
        Bearer token every request must carry (``GRAFLOW_DIST_UI_TOKEN``); required
        for any bind address other than loopback.
    checkpoint_dir:
        Where the coordinators write checkpoints (directory or ``redis://`` store).
    poll_s:
        How often live views look for changes.
    host:
        The bind address (its name is an accepted ``Host`` too).
    """

    redis_url: str | None = None
    prefix: str | None = None
    token: str | None = None
    checkpoint_dir: str = DEFAULT_CHECKPOINT_DIR
    poll_s: float = DEFAULT_POLL_S
    host: str = DEFAULT_HOST

    @classmethod
    def from_env(cls, **overrides: object) -> ConsoleSettings:
        base: dict[str, object] = {
            "token": os.environ.get(TOKEN_ENV) or None,
            "checkpoint_dir": os.environ.get(CHECKPOINT_DIR_ENV) or DEFAULT_CHECKPOINT_DIR,
        }
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)  # type: ignore[arg-type]

    def check_bind(self) -> None:
        """Refuse to serve beyond loopback without a token."""
        if not is_loopback(self.host) and not self.token:
            raise ConsoleAccessError(
                f"the console would listen on {self.host}, reachable from other machines, "
                f"without a token: set {TOKEN_ENV} (every request must then carry it) or "
                f"bind to {DEFAULT_HOST}")
