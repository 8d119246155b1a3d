"""What every area of the console (runs, a run, checkpoints, workers, ...) gets, and
the small helpers their routes share."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from graflow_dist.errors import ConsoleRequestError
from graflow_dist.web.console import Console
from graflow_dist.web.pages import Pages
from graflow_dist.web.settings import ConsoleSettings

MAX_BODY_BYTES = 1 << 20


@dataclass(frozen=True)
class AreaContext:
    """Handed to each area's ``routes(ctx)``."""

    console: Console
    pages: Pages
    settings: ConsoleSettings


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object; `ConsoleRequestError` for anything else."""
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise ConsoleRequestError(f"request body over {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise ConsoleRequestError("request body is not JSON") from None
    if not isinstance(body, dict):
        raise ConsoleRequestError("request body must be a JSON object")
    return body


def query_int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConsoleRequestError(f"query parameter {name!r} must be an integer, "
                                  f"got {raw!r}") from None


def text_field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ConsoleRequestError(f"field {name!r} must be a non-empty string")
    return value
