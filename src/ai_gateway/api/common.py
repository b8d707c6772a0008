"""What every route needs: reading a bounded JSON body, JSON responses, cancelling on disconnect."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive

from ai_gateway.errors import (
    GatewayError,
    InvalidRequestError,
    PayloadTooLargeError,
    RequestTimeoutError,
)
from ai_gateway.timers import LateStarts, cut

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


@dataclass(frozen=True, slots=True)
class BodyLimit:
    """How many bytes of a request body a route reads, and how long it waits for them."""

    max_bytes: int
    timeout_s: float  # body_timeout_s

    def at_most(self, max_bytes: int) -> BodyLimit:
        return BodyLimit(min(max_bytes, self.max_bytes), self.timeout_s)


async def read_json(request: Request, limit: BodyLimit) -> Any:
    """The body as JSON (read_body), 400 if it is empty or not JSON."""
    body = await read_body(request, limit)
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


async def read_body(request: Request, limit: BodyLimit) -> bytes:
    """The body's bytes: 413 past `limit.max_bytes` (checked before and while reading), 408 if
    it has not all arrived within `limit.timeout_s` of starting to read it (after
    authentication). Every route reads its body here, so this is the body read timeout: nothing
    of a request whose body is late has been used, and the 408 goes through the app's error
    handling like any other error. The server closes a connection answered before its body
    ended (ai_gateway/serving.py)."""
    max_bytes = limit.max_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLargeError(
            f"The request body is {declared} bytes; this gateway accepts at most {max_bytes} bytes."
        )
    try:
        # A deadline of the loop's shared timer, not a timer per request (ai_gateway/timers.py).
        return await cut(_read_all(request, max_bytes), limit.timeout_s)
    except TimeoutError:
        raise RequestTimeoutError(
            f"The request body did not arrive within {limit.timeout_s:g}s (body_timeout_s); "
            "send the whole body without pausing."
        ) from None


async def _read_all(request: Request, max_bytes: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLargeError(
                f"The request body exceeds this gateway's limit of {max_bytes} bytes."
            )
        parts.append(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


async def cancel_on_disconnect(work: Awaitable[T], receive: Receive, grace_s: float = 0.05) -> T:
    """Await `work` in this task, cancelling it if the client disconnects (so the upstream call
    is cancelled too). Must be called after the body has been read: then `receive()` only
    returns on disconnect.

    Watching costs a task, so it starts only once `work` has run for `grace_s` (`LateStarts`):
    a quick answer (the common case behind a fast upstream) never pays for it, and a client that
    leaves during a slow one is noticed at most `grace_s` + 10 ms late.
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
        # Run from the shared timer, whose context is another request's: start clean.
        watcher = asyncio.create_task(watch(), context=contextvars.Context())

    late = LateStarts.for_loop(task.get_loop())
    late.add(start_watching, grace_s, start_watching)
    try:
        return await work
    except asyncio.CancelledError:
        if disconnected and task.uncancel() == 0:
            raise ClientDisconnect from None
        raise
    finally:
        late.discard(start_watching)
        if watcher is not None:
            watcher.cancel()
