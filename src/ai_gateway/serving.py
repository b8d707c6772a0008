"""How `ai-gateway serve` runs uvicorn: its options, and an HTTP protocol that does not wait
for slow or silent clients.

uvicorn (httptools) has a keep-alive timeout between requests but none while a request's
headers arrive, and any byte resets its keep-alive timer: a client sending one byte every few
seconds, or a socket that never sends anything, holds a connection forever. `GuardedProtocol`
adds what is missing, in the server where the bytes are read:

- **Header timeout**: a request's headers must be complete within `header_timeout_s` of the
  connection opening, or of the first byte of a later request on it. A connection that never
  sent a byte is closed; one cut off mid-headers gets a 408 (OpenAI-style JSON) and is closed.
- **No reuse after an unfinished body**: when the response to a request goes out before its
  body has arrived (an early error, or the 408 below), the connection is closed instead of
  waiting for the rest.
- **Connection cap**: past `max_connections` open connections, a request is answered 503
  (`server_busy`, OpenAI-style JSON) without running the application, and its connection closed.

The body read timeout is where every route reads its body (`read_json` in `api/common.py`),
so that its 408 goes through the application's error handling, request id and metrics like any
other error.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from ai_gateway.errors import RequestTimeoutError, ServiceUnavailableError
from ai_gateway.settings import GatewaySettings


@dataclass(frozen=True, slots=True)
class ServerLimits:
    header_timeout_s: float
    max_connections: int


def _header_timeout_response(seconds: float) -> bytes:
    """The 408 written by the protocol itself: no request exists yet to run the app for."""
    body = RequestTimeoutError(
        f"The request headers did not arrive within {seconds:g}s (header_timeout_s); "
        "send the whole request without pausing."
    ).to_json()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


async def _too_many_connections(scope: Any, receive: Any, send: Any) -> None:
    """The ASGI answer for a request over the connection cap (the application is not run)."""
    error = ServiceUnavailableError(
        "This gateway has too many open connections (max_connections); retry shortly.",
        code="server_busy",
    )
    body = error.to_json()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"1"),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header timeout, no reuse of a connection whose
    request body never finished, and a connection cap (see the module docstring)."""

    def __init__(self, *args: Any, limits: ServerLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits
        self._header_timer: asyncio.TimerHandle | None = None
        self._partial = False  # some bytes of a request's headers have arrived
        self._unread: RequestResponseCycle | None = None  # the request whose body is arriving

    # -- headers ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._partial = True
        if self._header_timer is None:
            self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        self._partial = False
        if len(self.connections) > self._limits.max_connections:
            app, self.app = self.app, _too_many_connections
            try:
                super().on_headers_complete()
            finally:
                self.app = app
        else:
            super().on_headers_complete()
        self._unread = self.cycle

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(
            self._limits.header_timeout_s, self._headers_too_slow
        )

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self._partial:
            self.transport.write(_header_timeout_response(self._limits.header_timeout_s))
        self.transport.close()

    # -- body ---------------------------------------------------------------------------------

    def on_message_complete(self) -> None:
        self._unread = None
        super().on_message_complete()

    def on_response_complete(self) -> None:
        unread = self._unread
        if unread is not None and unread.response_complete and not self.transport.is_closing():
            # Answered before its body arrived: the rest of the body is not worth waiting for.
            self._unread = None
            self.transport.close()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)


def uvicorn_options(settings: GatewaySettings, ws_compression: bool = False) -> dict[str, Any]:
    """The options `serve` gives uvicorn (with the host, port and workers); `ws_compression`:
    accept permessage-deflate on WebSockets (`websocket.compression`)."""
    limits = ServerLimits(
        header_timeout_s=settings.header_timeout_s, max_connections=settings.max_connections
    )
    return {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        # A partial over a module-level class: picklable, for the worker processes.
        "http": functools.partial(GuardedProtocol, limits=limits),
        # The sans-I/O protocol writes a message straight to the transport; the default one
        # (websockets' legacy protocol) takes a lock and awaits a drain per message.
        "ws": "websockets-sansio",
        "ws_per_message_deflate": ws_compression,
        "timeout_keep_alive": settings.keep_alive_timeout_s,
        "access_log": False,
        "server_header": False,
        "log_config": None,
        "log_level": settings.log_level,
        "timeout_graceful_shutdown": 30,
    }


__all__ = ["GuardedProtocol", "ServerLimits", "uvicorn_options"]
