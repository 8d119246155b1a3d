"""The web console: an ASGI app (Starlette) with pages for people and a JSON API under
``/api/`` for every page; served by ``graflow-dist ui`` and started by ``graflow-dist
up``. See docs/console.md."""

from graflow_dist.web.app import AREAS, create_app
from graflow_dist.web.console import Console
from graflow_dist.web.settings import TOKEN_ENV, ConsoleSettings

__all__ = ["AREAS", "Console", "ConsoleSettings", "TOKEN_ENV", "create_app"]
