"""create_app: the console's ASGI app, with every area mounted in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import ModuleType

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from graflow_dist.errors import (
    CheckpointError,
    ConsoleAccessError,
    ConsoleRequestError,
    FeedbackError,
    FeedbackValidationError,
    GraflowError,
    RunActiveError,
    RunEndedError,
    TaskStateError,
    UnknownFeedbackError,
    UnknownSessionError,
    UnknownTaskError,
)
from graflow_dist.web.area import AreaContext
from graflow_dist.web.areas import checkpoints, feedback, run_page, runs, session, workers
from graflow_dist.web.console import Console
from graflow_dist.web.pages import STATIC_DIR, Pages
from graflow_dist.web.security import ConsoleGuard
from graflow_dist.web.settings import ConsoleSettings

# The mounted areas, in navigation order. A new area (e.g. human feedback) is a module
# in graflow_dist/web/areas/ with NAV and routes(ctx), listed here.
AREAS: list[ModuleType] = [runs, run_page, checkpoints, feedback, workers, session]

# HTTP status of each error the console answers with (the first match counts).
ERROR_STATUS: tuple[tuple[type[GraflowError], int], ...] = (
    (UnknownSessionError, 404), (UnknownTaskError, 404), (RunActiveError, 409),
    (RunEndedError, 409),
    (TaskStateError, 409), (ConsoleRequestError, 400), (CheckpointError, 400),
    (ConsoleAccessError, 403), (UnknownFeedbackError, 404), (FeedbackValidationError, 400),
    (FeedbackError, 409),
)


def status_of(exc: GraflowError) -> int:
    return next((code for cls, code in ERROR_STATUS if isinstance(exc, cls)), 500)


def create_app(settings: ConsoleSettings | None = None, console: Console | None = None,
               areas: list[ModuleType] | None = None) -> Starlette:
    """The console app.

    Parameters
    ----------
    settings:
        Redis, prefix, token, checkpoint directory (default: from the environment).
    console:
        An existing `Console` (tests); default: one connected from ``settings``.
    areas:
        Area modules to mount (default `AREAS`).
    """
    settings = settings or ConsoleSettings.from_env()
    console = console or Console(settings)
    chosen = AREAS if areas is None else areas
    nav = [a.NAV for a in chosen if getattr(a, "NAV", None)]
    pages = Pages(nav, token_required=bool(settings.token))
    ctx = AreaContext(console, pages, settings)
    route_list: list[BaseRoute] = []
    for area in chosen:
        route_list.extend(area.routes(ctx))
    route_list.append(Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"))

    async def on_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, GraflowError)
        code = status_of(exc)
        if request.url.path.startswith("/api/"):
            # "detail" as well: Graflow's feedback API answers errors that way
            return JSONResponse({"error": str(exc), "detail": str(exc),
                                 "type": type(exc).__name__}, code)
        return pages.render(request, "error.html", code, error=str(exc), code=code)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            console.close()

    app = Starlette(routes=route_list, exception_handlers={GraflowError: on_error},
                    middleware=[Middleware(ConsoleGuard, settings=settings)],
                    lifespan=lifespan)
    app.state.console = console
    return app
