"""Signing in with the console token (only when one is set), and liveness."""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from graflow_dist.web.area import MAX_BODY_BYTES, AreaContext
from graflow_dist.web.security import (
    AUTH_COOKIE,
    CSRF_COOKIE,
    ConsoleGuard,
    auth_cookie_value,
    same,
)

NAV = None


def routes(ctx: AreaContext) -> list[BaseRoute]:
    token = ctx.settings.token

    def login_form(request: Request) -> Response:
        return ctx.pages.render(request, "login.html", next=_next(request.query_params.get(
            "next")), error=None, csrf=request.cookies.get(CSRF_COOKIE, ""))

    async def login(request: Request) -> Response:
        raw = await request.body()
        form = {k: v[0] for k, v in parse_qs(raw[:MAX_BODY_BYTES].decode(
            errors="replace")).items()}
        refusal = ConsoleGuard.cross_site_refusal(request, form.get("csrf_token"))
        if refusal is not None:
            return refusal
        target = _next(form.get("next"))
        if not token:
            return RedirectResponse(target, 303)
        if not same(form.get("token"), token):
            return ctx.pages.render(request, "login.html", 401, next=target,
                                    error="wrong token",
                                    csrf=request.cookies.get(CSRF_COOKIE, ""))
        response = RedirectResponse(target, 303)
        response.set_cookie(AUTH_COOKIE, auth_cookie_value(token), httponly=True,
                            samesite="strict", path="/")
        return response

    def livez(request: Request) -> Response:
        return PlainTextResponse("ok")

    return [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/livez", livez, methods=["GET"]),
    ]


def _next(target: str | None) -> str:
    # Only paths of this console: never an open redirect.
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target
