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
- **Drain**: once the instance drains (`streaming/drain.py`), a new request other than the
  health checks and `/metrics` is answered 503 (`server_shutting_down`) without running the
  application, and its connection closed.

`drain_on_signals` puts the graceful drain in front of uvicorn's shutdown: on the first SIGTERM
(or SIGINT) the drain begins. `GatewayServer` (the server `serve` runs) then stops accepting at
once: it closes its listening sockets and its idle keep-alive connections, and a connection
with a request in flight is closed after its response. A load balancer in front gets "connection
refused" for a new request and sends it to another instance, which is safe to retry even for a
POST (nothing was sent); a health probe sees the instance gone. The requests in flight finish
(streams at most `drain_timeout_s`, then they end with an error event), and only then is
uvicorn's own shutdown started, which runs the lifespan's shutdown: the usage writer is flushed
last. A second signal stops at once. With `--workers N` uvicorn's supervisor makes each
worker's server, not `GatewayServer`: a draining worker keeps listening, answers readiness 503
and new requests the 503 above.

The body read timeout is where every route reads its body (`read_json` in `api/common.py`),
so that its 408 goes through the application's error handling, request id and metrics like any
other error.
"""

from __future__ import annotations

import asyncio
import functools
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from ai_gateway.errors import GatewayError, RequestTimeoutError, ServiceUnavailableError
from ai_gateway.settings import Config
from ai_gateway.streaming.drain import END_GRACE_S, STATE_KEY, Drain, refusal_error

# Paths a draining instance still serves: its health and metrics.
_OPEN_WHILE_DRAINING = (b"/health", b"/metrics")


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


def _refusal(error: GatewayError) -> Callable[[Any, Any, Any], Any]:
    """An ASGI app answering `error` with `Connection: close` (the application is not run)."""

    async def refuse(scope: Any, receive: Any, send: Any) -> None:
        await _refuse(error, send)

    return refuse


async def _refuse(error: GatewayError, send: Any) -> None:
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


_too_many_connections = _refusal(
    ServiceUnavailableError(
        "This gateway has too many open connections (max_connections); retry shortly.",
        code="server_busy",
    )
)
_shutting_down = _refusal(refusal_error())


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header timeout, no reuse of a connection whose
    request body never finished, and a connection cap (see the module docstring)."""

    def __init__(self, *args: Any, limits: ServerLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits
        self._header_timer: asyncio.TimerHandle | None = None
        self._partial = False  # some bytes of a request's headers have arrived
        self._unread: RequestResponseCycle | None = None  # the request whose body is arriving
        self._drain: Drain | None = None

    # -- headers ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()
        policy = self.app_state.get(STATE_KEY)  # the app's lifespan put it there
        if policy is not None:
            self._drain = policy.drain
            self._drain.track(self.tasks)  # the server's running requests: what a drain waits for

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._partial = True
        if self._header_timer is None:
            self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        self._partial = False
        refusal = None
        if len(self.connections) > self._limits.max_connections:
            refusal = _too_many_connections
        elif (
            self._drain is not None
            and self._drain.draining
            and not self.url.startswith(_OPEN_WHILE_DRAINING)
        ):
            refusal = _shutting_down
        if refusal is not None:
            app, self.app = self.app, refusal
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


def uvicorn_options(config: Config) -> dict[str, Any]:
    """The options `serve` gives uvicorn (with the host, port and workers)."""
    settings = config.gateway
    keepalive_s = config.streaming.keepalive_interval_s
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
        "ws_per_message_deflate": config.websocket.compression,
        "timeout_keep_alive": settings.keep_alive_timeout_s,
        "access_log": False,
        "server_header": False,
        "log_config": None,
        "log_level": settings.log_level,
        # WebSocket pings at the streams' keep-alive interval (None: none).
        "ws_ping_interval": keepalive_s or None,
        # uvicorn's own wait, after the drain (`drain_on_signals`) has run; also the bound when
        # no drain runs (the server is not in the main thread).
        "timeout_graceful_shutdown": settings.drain_timeout_s + END_GRACE_S,
    }


class GatewayServer(uvicorn.Server):
    """uvicorn's server, which stops accepting connections when the app's drain begins (see the
    module docstring): closing the listener is what a load balancer can act on safely."""

    async def startup(self, sockets: list[Any] | None = None) -> None:
        await super().startup(sockets=sockets)
        policy = self.lifespan.state.get(STATE_KEY) if hasattr(self, "lifespan") else None
        if policy is not None:
            policy.drain.on_begin(self.stop_accepting)

    def stop_accepting(self) -> None:
        for server in self.servers:
            server.close()  # new connections are refused; the ones open stay
        for connection in list(self.server_state.connections):
            # HTTP: an idle keep-alive connection is closed, a busy one after its response.
            # A WebSocket stays: the drain ends its requests, then closes it with 1001.
            if isinstance(connection, HttpToolsProtocol):
                connection.shutdown()


def run_server(config: uvicorn.Config) -> None:
    """`uvicorn.run` for one process, with `GatewayServer`. (With `--workers N` uvicorn's
    supervisor makes each worker's server itself: there the drain answers new requests 503.)"""
    server = GatewayServer(config)
    config.load_app()
    server.run()
    if not server.started:
        raise SystemExit(3)  # uvicorn's exit status for a failed start-up


Handler = Callable[[int, FrameType | None], Any] | int | None


def drain_on_signals(drain: Drain) -> Callable[[], None]:
    """Run `drain` before the server's own SIGTERM and SIGINT handling (see the module
    docstring). Call it in the running server's lifespan, after uvicorn has installed its
    handlers; returns a function that puts them back. Does nothing off the main thread (signal
    handlers can only be set there: a server run in a thread by a test keeps uvicorn's)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    previous: dict[int, Handler] = {sig: signal.getsignal(sig) for sig in signals}
    tasks: set[asyncio.Task[None]] = set()
    signalled: list[int] = []

    def pass_on(sig: int, frame: FrameType | None) -> None:
        handler = previous[sig]
        if callable(handler):
            handler(sig, frame)

    async def drain_then_stop(sig: int) -> None:
        # Imported here: a worker process unpickles this module (its protocol) before it
        # answers the supervisor's health pings, and the logging setup is slow to import.
        from ai_gateway.observability.logging import get_logger

        log = get_logger("ai_gateway.serving")
        log.info("draining", drain_timeout_s=drain.timeout_s, in_flight=drain.in_flight())
        drain.begin()
        await drain.wait()
        log.info("drained", in_flight=drain.in_flight(), expired=drain.expired)
        pass_on(sig, None)

    def start(sig: int) -> None:
        task = loop.create_task(drain_then_stop(sig))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def handle(sig: int, frame: FrameType | None) -> None:
        if signalled:  # the second signal: stop now
            pass_on(sig, frame)
            return
        signalled.append(sig)
        loop.call_soon_threadsafe(start, sig)

    for sig in signals:
        signal.signal(sig, handle)

    def restore() -> None:
        for sig, handler in previous.items():
            if signal.getsignal(sig) is handle:
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)

    return restore


__all__ = [
    "GatewayServer",
    "GuardedProtocol",
    "ServerLimits",
    "drain_on_signals",
    "run_server",
    "uvicorn_options",
]
