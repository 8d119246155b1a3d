"""ConsoleGuard: who may use the console, and proof that an action comes from its own
pages.

- ``Host`` must be a loopback name (or the bind address) unless a token is set, so a
  page on another site cannot reach a loopback console through DNS rebinding.
- With a token (``GRAFLOW_DIST_UI_TOKEN``) every request needs ``Authorization:
  Bearer TOKEN`` or the cookie that ``/login`` sets.
- Every POST/PUT/PATCH/DELETE not authorised by a bearer header must carry the
  ``gf_csrf`` cookie's value in ``X-CSRF-Token`` (double submit), and its ``Origin``
  (when sent) must be this console's own.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import quote

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graflow_dist.web.settings import ConsoleSettings, is_loopback

CSRF_COOKIE = "gf_csrf"
CSRF_HEADER = "x-csrf-token"
AUTH_COOKIE = "gf_auth"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Paths anyone may load: the login form, liveness, static assets.
OPEN_PATHS = ("/login", "/livez", "/static/")


def auth_cookie_value(token: str) -> str:
    """What the auth cookie holds: a MAC of the token, never the token itself."""
    return hmac.new(token.encode(), b"graflow-dist console session", hashlib.sha256).hexdigest()


def same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())  # type: ignore[union-attr]


def host_name(host_header: str) -> str:
    """``[::1]:8080`` -> ``::1``, ``localhost:8080`` -> ``localhost``."""
    if host_header.startswith("["):
        return host_header[1:host_header.find("]")] if "]" in host_header else host_header
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class ConsoleGuard:
    """ASGI middleware enforcing the rules above."""

    def __init__(self, app: ASGIApp, settings: ConsoleSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = self.refusal(request)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        csrf_missing = CSRF_COOKIE not in request.cookies

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and csrf_missing:
                headers = MutableHeaders(scope=message)
                headers.append("set-cookie", f"{CSRF_COOKIE}={secrets.token_urlsafe(32)}; "
                                             "Path=/; SameSite=Strict")
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def refusal(self, request: Request) -> Response | None:
        token = self.settings.token
        host = host_name(request.headers.get("host", ""))
        if not token and not (is_loopback(host) or host == self.settings.host):
            return JSONResponse({"error": f"host {host!r} is not this console's; open it "
                                          "through 127.0.0.1 or localhost"}, 403)
        path = request.url.path
        bearer = request.headers.get("authorization", "")
        by_header = (bool(token) and bearer.startswith("Bearer ")
                     and same(bearer.removeprefix("Bearer ").strip(), token))
        if token and not path.startswith(OPEN_PATHS):
            by_cookie = same(request.cookies.get(AUTH_COOKIE), auth_cookie_value(token))
            if not (by_header or by_cookie):
                return self._unauthorised(request)
        if request.method in UNSAFE_METHODS and not by_header and path != "/login":
            return self.cross_site_refusal(request)
        return None

    @staticmethod
    def cross_site_refusal(request: Request, supplied: str | None = None) -> Response | None:
        """None if ``request`` comes from this console's own pages; ``supplied`` is
        the CSRF value of a form (default: the ``X-CSRF-Token`` header)."""
        origin = request.headers.get("origin")
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        if origin is not None and origin != own:
            return JSONResponse({"error": f"cross-site request refused (origin {origin})"}, 403)
        fetch_site = request.headers.get("sec-fetch-site")
        if origin is None and fetch_site not in (None, "same-origin", "none"):
            return JSONResponse({"error": "cross-site request refused"}, 403)
        supplied = supplied if supplied is not None else request.headers.get(CSRF_HEADER)
        if not same(supplied, request.cookies.get(CSRF_COOKIE)):
            return JSONResponse({"error": f"missing or wrong {CSRF_HEADER} header: send the "
                                          f"value of the {CSRF_COOKIE} cookie"}, 403)
        return None

    @staticmethod
    def _unauthorised(request: Request) -> Response:
        wants_html = "text/html" in request.headers.get("accept", "")
        if request.method == "GET" and wants_html and not request.url.path.startswith("/api/"):
            return RedirectResponse(f"/login?next={quote(request.url.path)}", 303)
        return JSONResponse({"error": "authentication required: send Authorization: Bearer "
                                      "<GRAFLOW_DIST_UI_TOKEN>"}, 401,
                            headers={"www-authenticate": "Bearer"})
