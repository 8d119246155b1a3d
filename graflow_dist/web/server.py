"""Serving the console with uvicorn."""

from __future__ import annotations

import uvicorn

from graflow_dist.web.app import create_app
from graflow_dist.web.settings import DEFAULT_HOST, DEFAULT_PORT, ConsoleSettings

# Open live streams get this long to end when the server stops.
SHUTDOWN_GRACE_S = 2


def console_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}/"


def serve(settings: ConsoleSettings, port: int = DEFAULT_PORT, host: str = DEFAULT_HOST
          ) -> None:
    """Serve until SIGINT/SIGTERM; refuses a non-loopback ``host`` without a token."""
    settings.check_bind()
    app = create_app(settings)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                timeout_graceful_shutdown=SHUTDOWN_GRACE_S)
