"""`EventStreamResponse`: an SSE response that keeps a silent stream alive and ends it, with an
error event, when the instance's drain time is over.

The body opens the stream itself (it runs the chain up to the first chunk, then yields the
events), so the response waits for its first event before it starts:

- **Before the first event**, a GatewayError the body raises is the HTTP error itself (the
  app's error handler answers it with its status), as is a drain that expires then (503).
- **Keep-alive**: after `keepalive_s` without an event (the upstream is thinking, before its
  first token or between two), a comment line `: keep-alive` goes out, and again every
  `keepalive_s`, so that proxies with an idle timeout do not cut the stream; clients ignore
  comments. A keep-alive before the first event starts the response (200): an error after
  that is an error event. One timer per stream, re-armed only when it fires: an event going
  out costs a clock read, not a timer.
- **Drain** (`streaming/drain.py`): a stream still open when the drain expires is stopped
  (`on_expire` gives the reason to its record first), its body is closed (every stage's
  clean-up runs: the usage record is written), and the client gets the OpenAI-style error
  event, then the end of the response; never a silent cut.
- **Client gone**: the stream is cancelled (upstream closed) as soon as the client disconnects.
- However the stream ends, its body is closed before the response returns, in the request's own
  task, so every stage's clean-up (usage record, settlement, upstream connection) has run by
  then, also when the client left while an event was being written (the body then waits at a
  `yield` that nothing would resume).

The keep-alive interval and the drain come from the app's lifespan state (`scope["state"]`,
`api/draining.py`); without it (an app run without its lifespan) there is neither.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Literal

from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ai_gateway.api.draining import stream_policy
from ai_gateway.errors import GatewayError
from ai_gateway.streaming.drain import Drain, StreamPolicy
from ai_gateway.streaming.sse import encode_data

KEEPALIVE = b": keep-alive\n\n"
# How long the last words of a stream stopped at the deadline may wait for a slow client.
_LAST_WORDS_S = 2.0

Stop = Literal["gone", "deadline"]


class EventStreamResponse(Response):
    media_type = "text/event-stream"

    def __init__(
        self,
        body: AsyncGenerator[bytes, None],
        *,
        headers: Callable[[], Mapping[str, str]],
        on_expire: Callable[[Drain], GatewayError],
        on_error: Callable[[GatewayError], None],
        background: BackgroundTask | None = None,
    ) -> None:
        """`headers`: the response's, asked for when it starts. `on_expire`: called when the
        drain stops the stream, before its body is closed; the error to send. `on_error`:
        told of every error sent as an event (to count it)."""
        self.body_iterator = body
        self.status_code = 200
        self.background = background
        self.raw_headers = []  # set when the response starts
        self._make_headers = headers
        self._on_expire = on_expire
        self._on_error = on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stream = _Stream(self, send, stream_policy(scope))
        await stream.run(receive)
        if self.background is not None:
            await self.background()

    def start_message(self) -> dict[str, object]:
        self.init_headers(self._make_headers())
        return {"type": "http.response.start", "status": 200, "headers": self.raw_headers}


class _Stream:
    def __init__(self, response: EventStreamResponse, send: Send, policy: StreamPolicy | None):
        self._response = response
        self._body = response.body_iterator
        self._send = send
        self._policy = policy
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task[object] | None = None
        self._stop: Stop | None = None
        self._error: GatewayError | None = None  # what ends a stream stopped at the deadline
        self._started = False  # the response's start has been sent
        self._last = 0.0  # when the last event went out (the loop's clock)
        self._beat: asyncio.Task[None] | None = None  # a keep-alive being written
        self._timer: asyncio.TimerHandle | None = None
        self._interval = policy.keepalive_s if policy is not None else 0.0

    async def run(self, receive: Receive) -> None:
        self._task = task = asyncio.current_task()
        assert task is not None
        listener = self._loop.create_task(self._listen(receive))
        drain = self._policy.drain if self._policy is not None else None
        if drain is not None:
            drain.watch(self)
        try:
            await self._pump()
        except GatewayError as exc:  # raised by the body before its first event
            if not self._started:
                raise  # the HTTP error itself
            await self._last_words(exc)
        except asyncio.CancelledError:
            if self._stop is None or task.uncancel() > 0:
                await self._close_body()  # cancelled from outside: still recorded, now
                raise
            if self._stop == "deadline":
                assert self._error is not None
                await self._close_body()  # every stage's clean-up: the usage record is written
                if not self._started:
                    raise self._error from None  # nothing sent yet: the HTTP error (503)
                await self._last_words(self._error)
            elif not self._started:
                raise ClientDisconnect from None  # recorded as 499, like any client that left
        finally:
            listener.cancel()
            self._quiet()
            if drain is not None:
                drain.unwatch(self)
            # However it ended (a client that left during a write leaves the body suspended at
            # a yield): every stage's clean-up runs now, in this task (a no-op when done).
            await self._close_body()

    async def _pump(self) -> None:
        send, loop = self._send, self._loop
        if self._interval > 0:
            self._last = loop.time()
            self._timer = loop.call_at(self._last + self._interval, self._tick)
        async for data in self._body:
            self._last = loop.time()
            if self._beat is not None:  # a keep-alive is being written: after it
                await self._beat
            if not self._started:
                await self._start()
            await send({"type": "http.response.body", "body": data, "more_body": True})
        self._quiet()
        if not self._started:
            await self._start()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _start(self) -> None:
        self._started = True
        await self._send(self._response.start_message())

    # -- keep-alive ---------------------------------------------------------------------------

    def _tick(self) -> None:
        now = self._loop.time()
        due = self._last + self._interval
        if now >= due and self._beat is None:
            self._last = now
            self._beat = self._loop.create_task(self._keepalive())
            due = now + self._interval
        elif now >= due:  # the previous keep-alive is still waiting for the client
            due = now + self._interval
        self._timer = self._loop.call_at(due, self._tick)

    async def _keepalive(self) -> None:
        # A failure means the client is gone: the listener or the next event finds out.
        with contextlib.suppress(Exception):
            if not self._started:
                await self._start()
            await self._send({"type": "http.response.body", "body": KEEPALIVE, "more_body": True})
        self._beat = None

    def _quiet(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._beat is not None:
            self._beat.cancel()
            self._beat = None

    # -- stopping -----------------------------------------------------------------------------

    async def _listen(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self._cancel("gone")
                return

    def _cancel(self, why: Stop) -> None:
        if self._stop is None and self._task is not None:
            self._stop = why
            self._task.cancel()

    def drain_began(self) -> None:
        """The stream goes on until it ends or the drain expires."""

    def drain_expired(self) -> None:
        if self._stop is None and self._policy is not None:
            self._error = self._response._on_expire(self._policy.drain)  # the record's reason
            self._cancel("deadline")

    async def _close_body(self) -> None:
        with contextlib.suppress(Exception):
            await self._body.aclose()

    async def _last_words(self, error: GatewayError) -> None:
        """The response has started: the error as its last event, then its end."""
        self._quiet()
        self._response._on_error(error)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_LAST_WORDS_S):
                if self._beat is not None:
                    await self._beat
                body = encode_data(error.to_dict())
                await self._send({"type": "http.response.body", "body": body, "more_body": True})
                await self._send({"type": "http.response.body", "body": b"", "more_body": False})
