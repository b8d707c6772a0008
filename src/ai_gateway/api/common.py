"""What every route needs: reading a bounded JSON body, JSON responses, cancelling on disconnect."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive

from ai_gateway.errors import GatewayError, InvalidRequestError, PayloadTooLargeError

T = TypeVar("T")


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(exc: GatewayError, headers: Mapping[str, str] | None = None) -> Response:
    merged = {**exc.headers, **(headers or {})}
    return Response(
        exc.to_json(), status_code=exc.status, headers=merged, media_type="application/json"
    )


async def read_json(request: Request, limit: int) -> Any:
    """The body as JSON: 413 past `limit` bytes (checked before and while reading), 400 if bad."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(
            f"The request body is {declared} bytes; this gateway accepts at most {limit} bytes."
        )
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(
                f"The request body exceeds this gateway's limit of {limit} bytes."
            )
        parts.append(chunk)
    body = parts[0] if len(parts) == 1 else b"".join(parts)
    if not body:
        raise InvalidRequestError(
            "The request body is empty; send a JSON object with Content-Type: application/json."
        )
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(
            f"The request body is not valid JSON ({exc.msg} at line {exc.lineno}, "
            f"column {exc.colno})."
        ) from None


async def cancel_on_disconnect(work: Awaitable[T], receive: Receive, grace_s: float = 0.05) -> T:
    """Await `work` in this task, cancelling it if the client disconnects (so the upstream call
    is cancelled too). Must be called after the body has been read: then `receive()` only
    returns on disconnect.

    Watching costs a task, so it starts only once `work` has run for `grace_s`: a quick answer
    (the common case behind a fast upstream) never pays for it, and a client that leaves
    during a slow one is noticed at most `grace_s` late.
    """
    task = asyncio.current_task()
    assert task is not None
    disconnected = False
    watcher: asyncio.Task[None] | None = None

    async def watch() -> None:
        nonlocal disconnected
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected = True
                task.cancel()
                return

    def start_watching() -> None:
        nonlocal watcher
        watcher = asyncio.create_task(watch())

    timer = asyncio.get_running_loop().call_later(grace_s, start_watching)
    try:
        return await work
    except asyncio.CancelledError:
        if disconnected and task.uncancel() == 0:
            raise ClientDisconnect from None
        raise
    finally:
        timer.cancel()
        if watcher is not None:
            watcher.cancel()
