"""A run (``/runs/{session_id}``): its graph coloured by task state, live; per-task
detail; channel keys; actions cancel and retry (checkpoints: `checkpoints`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from graflow_dist.web.area import AreaContext, json_body, text_field
from graflow_dist.web.sse import event_stream

NAV = None


def routes(ctx: AreaContext) -> list[BaseRoute]:
    console = ctx.console

    def page(request: Request) -> Response:
        sid = request.path_params["session_id"]
        data = console.run(sid)
        svg = console.graph_svg(sid, include_style=False)
        return ctx.pages.render(request, "run.html", data=data, svg=svg, session_id=sid)

    def api_run(request: Request) -> Response:
        return JSONResponse(console.run(request.path_params["session_id"]))

    def api_graph(request: Request) -> Response:
        svg = console.graph_svg(request.path_params["session_id"])
        return Response(svg, media_type="image/svg+xml")

    def api_stream(request: Request) -> Response:
        sid = request.path_params["session_id"]
        return event_stream(request, lambda: console.live(sid), ctx.settings.poll_s)

    async def api_cancel(request: Request) -> Response:
        body = await json_body(request)
        reason = body.get("reason") or "cancelled from the web console"
        return JSONResponse(console.cancel(request.path_params["session_id"], str(reason)))

    async def api_retry(request: Request) -> Response:
        body = await json_body(request)
        return JSONResponse(console.retry(request.path_params["session_id"],
                                          text_field(body, "task_id")))

    return [
        Route("/runs/{session_id}", page, methods=["GET"]),
        Route("/api/runs/{session_id}", api_run, methods=["GET"]),
        Route("/api/runs/{session_id}/graph.svg", api_graph, methods=["GET"]),
        Route("/api/runs/{session_id}/stream", api_stream, methods=["GET"]),
        Route("/api/runs/{session_id}/cancel", api_cancel, methods=["POST"]),
        Route("/api/runs/{session_id}/retry", api_retry, methods=["POST"]),
    ]
