"""What every route needs: reading a bounded JSON body, JSON responses, cancelling on disconnect."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Mapping
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
    parts: list[bytes] = []
    size = 0
    # The deadline is one entry in the loop's shared timer (`LateStarts`), not a timer of its
    # own: most bodies have arrived with their headers, and the entry is only added and removed.
    task = asyncio.current_task()
    assert task is not None
    cancelling = task.cancelling()
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    late = LateStarts.for_loop(asyncio.get_running_loop())
    late.add(expire, limit.timeout_s, expire)
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise PayloadTooLargeError(
                    f"The request body exceeds this gateway's limit of {max_bytes} bytes."
                )
            parts.append(chunk)
    except asyncio.CancelledError:
        if expired and task.uncancel() <= cancelling:
            raise RequestTimeoutError(
                f"The request body did not arrive within {limit.timeout_s:g}s (body_timeout_s); "
                "send the whole body without pausing."
            ) from None
        raise
    finally:
        late.discard(expire)
    return parts[0] if len(parts) == 1 else b"".join(parts)


class LateStarts:
    """Runs callbacks once their time has come, with one loop timer for all of them: a request
    that ends before its time only adds and removes a dict entry, where a timer per request
    (`call_later` and `cancel`) cost a little on every request. The timer fires at the earliest
    time due, but at most once per `min_interval_s`, so a callback runs at most that much late.
    Shared by the requests of a loop (`for_loop`); use it on the loop's thread only."""

    def __init__(self, loop: asyncio.AbstractEventLoop, min_interval_s: float = 0.01) -> None:
        self._loop = loop
        self._min_interval_s = min_interval_s
        self._waiting: dict[object, tuple[float, Callable[[], None]]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def add(self, key: object, delay_s: float, callback: Callable[[], None]) -> None:
        due = self._loop.time() + delay_s
        self._waiting[key] = (due, callback)
        if self._timer is None or due < self._timer_at:
            self._schedule(due)

    def discard(self, key: object) -> None:
        self._waiting.pop(key, None)

    def _schedule(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = self._loop.time()
        earliest = None
        due_now: list[Callable[[], None]] = []
        for key, (due, callback) in list(self._waiting.items()):
            if due <= now:
                del self._waiting[key]
                due_now.append(callback)
            elif earliest is None or due < earliest:
                earliest = due
        if earliest is not None:
            self._schedule(max(earliest, now + self._min_interval_s))
        for callback in due_now:  # one that fails is reported and stops neither the others
            try:  # nor the timer (as a timer of its own would not)
                callback()
            except Exception as exc:
                self._loop.call_exception_handler(
                    {"message": "LateStarts callback failed", "exception": exc}
                )

    _last: LateStarts | None = None  # the latest loop's: almost always the running one

    @classmethod
    def for_loop(cls, loop: asyncio.AbstractEventLoop) -> LateStarts:
        """The running loop's. Another loop gets a new one: each keeps its own callbacks and
        timer, so sharing is only a saving, never needed for correctness."""
        last = cls._last
        if last is None or last._loop is not loop:
            last = cls._last = cls(loop)
        return last


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
