"""Server-rendered pages: Jinja2 templates shipped in the package, no CDN."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import HTMLResponse

from graflow_dist.drawing import DEFAULT_STYLESHEET

WEB_DIR = Path(__file__).parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"


def _when(epoch: float | None) -> str:
    if not epoch:
        return "-"
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.1f} ms"
    if value < 120:
        return f"{value:.2f} s"
    return f"{value / 60:.1f} min"


def _page_query(params: QueryParams, offset: int) -> str:
    """The same query with another ``offset`` (pager links)."""
    items = [(k, v) for k, v in params.multi_items() if k != "offset"]
    return urlencode([*items, ("offset", str(max(0, offset)))])


class Pages:
    """Renders templates with the navigation of every mounted area."""

    def __init__(self, nav: list[tuple[str, str]], token_required: bool) -> None:
        self.nav = nav
        self.token_required = token_required
        self.env = Environment(loader=FileSystemLoader(TEMPLATES_DIR),
                               autoescape=select_autoescape(["html"]))
        self.env.filters["when"] = _when
        self.env.filters["seconds"] = _seconds
        self.env.filters["pagequery"] = _page_query
        self.env.globals["graph_stylesheet"] = DEFAULT_STYLESHEET

    def render(self, request: Request, template: str, status_code: int = 200,
               **context: Any) -> HTMLResponse:
        html = self.env.get_template(template).render(
            request=request, nav=self.nav, path=request.url.path,
            token_required=self.token_required, **context)
        return HTMLResponse(html, status_code)
