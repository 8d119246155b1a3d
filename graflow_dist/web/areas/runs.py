"""Runs (``/``): newest first, filtered and paged, live, with bulk cancel."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from graflow_dist.errors import ConsoleRequestError
from graflow_dist.web.area import AreaContext, json_body, query_int
from graflow_dist.web.console import DEFAULT_PAGE_SIZE, listed_statuses
from graflow_dist.web.sse import event_stream

NAV = ("Runs", "/")


def _query(request: Request) -> dict[str, Any]:
    params = request.query_params
    return {"status": [s for s in params.getlist("status") if s],
            "workflow": params.get("workflow") or None,
            "session": (params.get("session") or "").strip() or None,
            "limit": query_int(request, "limit", DEFAULT_PAGE_SIZE),
            "offset": query_int(request, "offset", 0)}


def routes(ctx: AreaContext) -> list[BaseRoute]:
    console = ctx.console

    def page(request: Request) -> Response:
        query = _query(request)
        data = console.runs(**query)
        return ctx.pages.render(request, "runs.html", data=data, query=query,
                                statuses=[s.value for s in listed_statuses()],
                                workflows=console.workflows())

    def api_runs(request: Request) -> Response:
        return JSONResponse(console.runs(**_query(request)))

    def api_stream(request: Request) -> Response:
        query = _query(request)
        return event_stream(request, lambda: console.runs(**query), ctx.settings.poll_s)

    async def api_cancel(request: Request) -> Response:
        body = await json_body(request)
        sessions = body.get("sessions")
        if not isinstance(sessions, list) or not all(isinstance(s, str) for s in sessions):
            raise ConsoleRequestError("field 'sessions' must be a list of session ids")
        return JSONResponse(console.cancel_many(sessions))

    return [
        Route("/", page, methods=["GET"]),
        Route("/api/runs", api_runs, methods=["GET"]),
        Route("/api/runs/stream", api_stream, methods=["GET"]),
        Route("/api/runs/cancel", api_cancel, methods=["POST"]),
    ]
