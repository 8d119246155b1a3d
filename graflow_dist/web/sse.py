"""Server-sent events: a live view polls the broker and sends what changed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import StreamingResponse

from graflow_dist.errors import GraflowError

# A comment line this often keeps proxies from closing an idle stream.
KEEPALIVE_S = 15.0


def event_stream(request: Request, produce: Callable[[], Any], poll_s: float
                 ) -> StreamingResponse:
    """An ``text/event-stream`` response: ``produce()`` (run in a thread; it reads
    Redis) every ``poll_s``; an ``update`` event whenever its JSON changes, an
    ``error`` event (and the end) when it raises a `GraflowError`."""

    async def events() -> AsyncIterator[str]:
        last = None
        idle = 0.0
        yield "retry: 2000\n\n"
        while not await request.is_disconnected():
            try:
                data = json.dumps(await run_in_threadpool(produce), sort_keys=True,
                                  default=str)
            except GraflowError as exc:
                yield f"event: error\ndata: {json.dumps({'error': str(exc)})}\n\n"
                return
            if data != last:
                last, idle = data, 0.0
                yield f"event: update\ndata: {data}\n\n"
            elif idle >= KEEPALIVE_S:
                idle = 0.0
                yield ": keep-alive\n\n"
            await asyncio.sleep(poll_s)
            idle += poll_s

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"cache-control": "no-store", "x-accel-buffering": "no"})
