"""Workers and queues (``/workers``): heartbeats, current tasks, throughput; queue
depth and oldest waiting job; coordinators and the leader."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from graflow_dist.web.area import AreaContext
from graflow_dist.web.sse import event_stream

NAV = ("Workers", "/workers")


def routes(ctx: AreaContext) -> list[BaseRoute]:
    console = ctx.console

    def page(request: Request) -> Response:
        return ctx.pages.render(request, "workers.html", data=console.workers())

    def api_workers(request: Request) -> Response:
        return JSONResponse(console.workers())

    def api_stream(request: Request) -> Response:
        return event_stream(request, console.workers, ctx.settings.poll_s)

    return [
        Route("/workers", page, methods=["GET"]),
        Route("/api/workers", api_workers, methods=["GET"]),
        Route("/api/workers/stream", api_stream, methods=["GET"]),
    ]
