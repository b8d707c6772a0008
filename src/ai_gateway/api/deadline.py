"""The request body read timeout, as an ASGI receive wrapper.

A request's body must have arrived within `body_timeout_s` of this middleware receiving the
request: its headers are complete then, and it has been authenticated (the middleware sits
inside authentication, so a slow key store does not eat into the client's time). A client
still sending after that gets a 408 (`request_timeout`, OpenAI-style JSON, `Connection: close`)
from wherever the body is being read, so nothing of the request has been used yet and nothing
reaches an upstream. Once the body is complete, `receive` is passed through untouched: later
calls only wait for a disconnect.

The header read timeout and the connection cap are in the server's protocol
(`ai_gateway/serving.py`); a route that answers without reading the body leaves the
connection to be closed there.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ai_gateway.errors import RequestTimeoutError


class BodyDeadlineMiddleware:
    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self._timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        timeout_s = self._timeout_s
        deadline = asyncio.get_running_loop().time() + timeout_s
        complete = False

        async def receive_in_time() -> Message:
            nonlocal complete
            if complete:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeoutError(
                    f"The request body did not arrive within {timeout_s:g}s (body_timeout_s); "
                    "send the whole body without pausing."
                ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            return message

        await self.app(scope, receive_in_time, send)
