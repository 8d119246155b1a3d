"""A run's checkpoints, and resuming one of them."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from graflow_dist.web.area import AreaContext, json_body, text_field

NAV = None


def routes(ctx: AreaContext) -> list[BaseRoute]:
    console = ctx.console

    def api_list(request: Request) -> Response:
        sid = request.path_params["session_id"]
        return JSONResponse({"session_id": sid, "checkpoints": console.checkpoints(sid)})

    async def api_resume(request: Request) -> Response:
        body = await json_body(request)
        return JSONResponse(console.resume(request.path_params["session_id"],
                                           text_field(body, "checkpoint")))

    return [
        Route("/api/runs/{session_id}/checkpoints", api_list, methods=["GET"]),
        Route("/api/runs/{session_id}/resume", api_resume, methods=["POST"]),
    ]
