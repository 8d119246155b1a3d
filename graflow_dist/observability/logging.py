"""structlog set-up: JSON lines in production, readable lines on a terminal."""

from __future__ import annotations

import logging
import os
import sys

import structlog

LOG_FORMAT_ENV = "GRAFLOW_DIST_LOG_FORMAT"  # "json" or "console"
LOG_LEVEL_ENV = "GRAFLOW_DIST_LOG_LEVEL"


def configure_logging(level: str | None = None, fmt: str | None = None) -> None:
    """Route structlog (and stdlib logging) to stderr.

    ``fmt`` defaults to ``GRAFLOW_DIST_LOG_FORMAT``, else console on a TTY and JSON
    otherwise; ``level`` to ``GRAFLOW_DIST_LOG_LEVEL`` or ``info``.
    """
    level_name = (level or os.environ.get(LOG_LEVEL_ENV) or "info").upper()
    numeric = getattr(logging, level_name, logging.INFO)
    chosen = fmt or os.environ.get(LOG_FORMAT_ENV) or ("console" if sys.stderr.isatty() else "json")
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if chosen == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
