"""Human feedback (``/feedback``): the requests tasks wait on, across runs, each with its
form; Graflow's feedback API and form paths (``/api/feedback...``, ``/ui/feedback/{id}``).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from graflow_dist.client import Client
from graflow_dist.errors import ConsoleRequestError, UnknownFeedbackError
from graflow_dist.hitl.backend.redis import RedisFeedbackBackend
from graflow_dist.web.area import AreaContext, json_body, query_int
from graflow_dist.web.sse import event_stream

NAV = ("Feedback", "/feedback")
RESPONSE_FIELDS = ("approved", "reason", "text", "selected", "selected_multiple",
                   "custom_data", "responded_by")
DEFAULT_RECENT = 100


class FeedbackDesk:
    """What the feedback pages and API show and do, as plain data."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.backend = RedisFeedbackBackend(client.broker.feedback)

    def listing(self, session_id: str | None = None, *, everything: bool = False,
                limit: int = DEFAULT_RECENT) -> dict[str, Any]:
        """Open requests (pending, or past their timeout while their task still waits),
        or with ``everything`` the most recent of any status; Graflow's shape."""
        requests = (self.backend.list_requests(session_id, limit) if everything
                    else self.backend.list_open_requests(session_id))
        return {"count": len(requests), "requests": [r.to_dict() for r in requests]}

    def detail(self, feedback_id: str) -> dict[str, Any]:
        request = self.client.feedback.get_request(feedback_id)
        if request is None:
            raise UnknownFeedbackError(feedback_id)
        response = self.client.feedback.get_response(feedback_id)
        return {"request": request.to_dict(),
                "response": None if response is None else response.to_dict()}

    def respond(self, feedback_id: str, body: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(body) - set(RESPONSE_FIELDS))
        if unknown:
            raise ConsoleRequestError(f"unknown field(s) {', '.join(unknown)}; an answer "
                                      f"has {', '.join(RESPONSE_FIELDS)}")
        fields = {k: v for k, v in body.items() if v is not None}
        return self.client.respond(feedback_id, **fields).to_dict()

    def cancel(self, feedback_id: str) -> dict[str, Any]:
        self.client.cancel_feedback(feedback_id)
        return {"message": "Feedback request cancelled", "feedback_id": feedback_id}


def routes(ctx: AreaContext) -> list[BaseRoute]:
    desk = FeedbackDesk(ctx.console.client)

    def listing(request: Request) -> dict[str, Any]:
        return desk.listing(request.query_params.get("session_id") or None,
                            everything=request.query_params.get("all") in ("1", "true"),
                            limit=query_int(request, "n_recent", DEFAULT_RECENT))

    def page(request: Request) -> Response:
        return ctx.pages.render(request, "feedback.html", data=listing(request),
                                single=None)

    def form(request: Request) -> Response:
        detail = desk.detail(request.path_params["feedback_id"])
        return ctx.pages.render(request, "feedback.html", single=detail,
                                data={"count": 1, "requests": [detail["request"]]})

    def api_list(request: Request) -> Response:
        return JSONResponse(listing(request))

    def api_stream(request: Request) -> Response:
        return event_stream(request, lambda: listing(request), ctx.settings.poll_s)

    def api_detail(request: Request) -> Response:
        return JSONResponse(desk.detail(request.path_params["feedback_id"]))

    async def api_respond(request: Request) -> Response:
        body = await json_body(request)
        return JSONResponse(desk.respond(request.path_params["feedback_id"], body))

    def api_cancel(request: Request) -> Response:
        return JSONResponse(desk.cancel(request.path_params["feedback_id"]))

    return [
        Route("/feedback", page, methods=["GET"]),
        Route("/ui/feedback/", lambda r: RedirectResponse("/feedback", 307), methods=["GET"]),
        Route("/ui/feedback/{feedback_id}", form, methods=["GET"]),
        Route("/api/feedback", api_list, methods=["GET"]),
        Route("/api/feedback/stream", api_stream, methods=["GET"]),
        Route("/api/feedback/{feedback_id}", api_detail, methods=["GET"]),
        Route("/api/feedback/{feedback_id}", api_cancel, methods=["DELETE"]),
        Route("/api/feedback/{feedback_id}/respond", api_respond, methods=["POST"]),
    ]
