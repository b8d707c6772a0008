"""The WebSocket endpoint, `/ai/ws` and `/v1/ws` (docs/api.md, "WebSocket"): one socket, many
requests, each told apart by the client's `id`; the messages are in `api/ws_protocol.py`, how
they are sent in `api/ws_send.py`.

Opening: refused (403 `websocket_disabled`) when `websocket.enabled` is off. With
authentication on, the auth middleware (`api/auth.py`) has checked an `Authorization` header or
a `bearer.<credential>` subprotocol (echoed when the socket is accepted); a socket that carried
neither must send `{"type": "auth", "token"}` first, within `auth_timeout_s`, else it is closed
with 1008.

Each request runs in a task of its own (`api/ws_endpoints.py`: the HTTP handlers' exchanges and
chains); `cancel` cancels that task, and the chain's stages clean up as for an HTTP client that
left (the upstream request is closed). Each task sends its own messages straight to the socket,
one at a time, so a request's messages stay in order and a slow reader holds back only the
requests it is slow to read: at most one message per request waits, beside the server's write
buffer. A send that has waited `send_timeout_s` (the client stopped reading) closes the socket
with 4008, and its requests are cancelled. A message over `max_message_bytes` closes the socket
with 1009. When the socket closes, however it closes, its requests are cancelled.

Drain (`streaming/drain.py`): once the instance drains, a new socket is refused (503
`server_shutting_down`) and an open one takes no new request (an `error` message with that
code); it is closed with 1001 when its requests in flight have finished. When the drain time
is over, each request still in flight gets an `error` message (`server_shutting_down`; its
usage record says so) and the socket is closed with 1001. The protocol's pings, which keep an
idle socket open through proxies, follow `streaming.keepalive_interval_s` (`serving.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from time import perf_counter
from typing import Any

from starlette.types import Message
from starlette.websockets import WebSocket

from ai_gateway.api.auth import bearer_subprotocol, can_deny, send_error, socket_authenticator
from ai_gateway.api.middleware import request_id_source
from ai_gateway.api.ws_endpoints import SocketEndpoints
from ai_gateway.api.ws_protocol import Incoming, ProtocolError, encode, error_message, parse
from ai_gateway.api.ws_send import ClientGone, SocketSender, unexpected_error
from ai_gateway.errors import (
    AuthenticationError,
    GatewayError,
    PermissionDeniedError,
)
from ai_gateway.observability.logging import get_logger
from ai_gateway.observability.metrics import Metrics
from ai_gateway.pipeline.exchange import Exchange
from ai_gateway.request_info import RequestInfo
from ai_gateway.streaming.config import WebSocketConfig
from ai_gateway.streaming.drain import Drain, refusal_error, shutdown_error

log = get_logger("ai_gateway.ws")

LABEL = "/ws"  # the metrics label of the socket's requests
TOO_BIG = 1009
POLICY = 1008
GOING_AWAY = 1001
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


class WebSocketAPI:
    def __init__(
        self,
        config: WebSocketConfig,
        endpoints: SocketEndpoints,
        metrics: Metrics,
        drain: Drain | None = None,
    ) -> None:
        self._config = config
        self._endpoints = endpoints
        self._metrics = metrics
        self._drain = drain
        self._new_id = request_id_source()

    async def serve(self, websocket: WebSocket) -> None:
        scope = websocket.scope
        if not self._config.enabled:
            refusal = PermissionDeniedError(
                "WebSocket is turned off on this gateway (websocket.enabled: false); use "
                'POST /v1/chat/completions with "stream": true (SSE) instead.',
                code="websocket_disabled",
            )
            await send_error(websocket.send, refusal, "websocket", can_deny(scope))
            return
        if self._drain is not None and self._drain.draining:
            await send_error(websocket.send, refusal_error(), "websocket", can_deny(scope))
            return
        await websocket.accept(subprotocol=bearer_subprotocol(scope))
        info = RequestInfo.from_scope(scope)
        authenticate = socket_authenticator(scope)
        if authenticate is not None and not await self._first_message_auth(websocket):
            return
        drain_s = self._drain.timeout_s if self._drain is not None else 0.0
        session = Session(websocket, self._config, self._endpoints, self._metrics, drain_s)
        if self._drain is None:
            await session.run(lambda: self._request_info(info))
            return
        self._drain.watch(session)
        try:
            await session.run(lambda: self._request_info(info))
        finally:
            self._drain.unwatch(session)

    def _request_info(self, socket: RequestInfo) -> RequestInfo:
        return RequestInfo(
            request_id=self._new_id(), principal=socket.principal, client_ip=socket.client_ip
        )

    async def _first_message_auth(self, websocket: WebSocket) -> bool:
        """The `auth` message of a socket opened without a credential; closes it on failure."""
        authenticate = socket_authenticator(websocket.scope)
        assert authenticate is not None
        try:
            async with asyncio.timeout(self._config.auth_timeout_s):
                message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return False
            incoming = parse(_data(message))
            if incoming.type != "auth":
                raise AuthenticationError(
                    'Authenticate first: send {"type": "auth", "token": "<key>"}, or open '
                    "the socket with an Authorization header or a bearer.<key> subprotocol.",
                    code="missing_api_key",
                )
            token = incoming.token
            header = token if token.lower().startswith("bearer ") else "Bearer " + token
            await authenticate(header.encode("latin-1", "replace"))
            return True
        except TimeoutError:
            error: GatewayError = AuthenticationError(
                f"No 'auth' message within {self._config.auth_timeout_s:g}s of opening.",
                code="missing_api_key",
            )
        except GatewayError as exc:
            error = exc
        await websocket.send_text(encode(error_message(None, error)))
        await websocket.close(POLICY, error.code or "")
        return False


class Session:
    """One open socket: its requests in flight, its send queue, and how it closes."""

    def __init__(
        self,
        websocket: WebSocket,
        config: WebSocketConfig,
        endpoints: SocketEndpoints,
        metrics: Metrics,
        drain_s: float = 0.0,
    ) -> None:
        self._ws = websocket
        self._drain_s = drain_s
        self._config = config
        self._endpoints = endpoints
        self._metrics = metrics
        self._sender = SocketSender(websocket, config.send_timeout_s, self._stop)
        self._deliver = self._sender.deliver
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancelled: set[str] = set()
        self._close: tuple[int, str] | None = None  # why the gateway closes the socket
        self._main: asyncio.Task[Any] | None = None
        self._exchanges: dict[str, Exchange] = {}  # of the requests in flight
        self._draining = False
        self._expired: GatewayError | None = None  # the drain's deadline passed
        self._ending = False  # the socket is closing: its requests are being cancelled

    async def run(self, new_info: Callable[[], RequestInfo]) -> None:
        """Serve the socket until it closes; `new_info` makes each request's facts."""
        self._main = asyncio.current_task()
        self._new_info = new_info
        self._sender.start()
        try:
            await self._receive_loop()
        except asyncio.CancelledError:
            if self._close is None or self._main is None or self._main.uncancel() > 0:
                raise
        finally:
            self._ending = True
            tasks = list(self._tasks.values())
            for task in tasks:
                task.cancel()
            # Each request's stages clean up (upstream closed, recorded, settled).
            await asyncio.gather(*tasks, return_exceptions=True)
            self._sender.close()
        if self._close is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):  # a client that does not read may not read this
                    await self._ws.close(*self._close)

    async def _receive_loop(self) -> None:
        limit = self._config.max_message_bytes
        while True:
            message = await self._ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = _data(message)
            size = len(data) if isinstance(data, bytes) or len(data) * 4 <= limit else None
            if (size if size is not None else len(str(data).encode())) > limit:
                self._close = (TOO_BIG, f"message larger than {limit} bytes")
                return
            try:
                reply = self._handle(parse(data))
                if reply is not None:
                    await self._deliver(reply)
            except ProtocolError as exc:
                await self._deliver(encode(error_message(exc.request_id, exc)))
            except GatewayError as exc:
                await self._deliver(encode(error_message(None, exc)))
            except ClientGone:
                return

    def _handle(self, incoming: Incoming) -> str | None:
        """Act on a client's message; the message to answer it with, if any."""
        if incoming.type == "ping":
            return '{"type":"pong"}'
        request_id = incoming.id
        if incoming.type == "auth":
            raise ProtocolError(
                "This socket is already authenticated.", None, code="invalid_message"
            )
        assert request_id is not None
        if incoming.type == "cancel":
            task = self._tasks.get(request_id)
            if task is not None:  # else it has finished: nothing to cancel
                self._cancelled.add(request_id)
                task.cancel()
            return None
        if self._draining:
            return encode(error_message(request_id, refusal_error()))
        if request_id in self._tasks:
            raise ProtocolError(
                f"A request with id {request_id!r} is in flight on this socket; use a new id.",
                request_id,
                param="id",
                code="duplicate_id",
            )
        if len(self._tasks) >= self._config.max_in_flight:
            raise ProtocolError(
                f"{self._config.max_in_flight} requests are in flight on this socket "
                "(websocket.max_in_flight); wait for one to finish.",
                request_id,
                code="too_many_in_flight",
            )
        self._tasks[request_id] = asyncio.create_task(
            self._request(request_id, incoming.endpoint, incoming.body)
        )
        return None

    async def _request(self, request_id: str, endpoint: str, body: Any) -> None:
        info = self._new_info()
        if _CLIENT_ID.fullmatch(request_id):
            info.client_request_id = request_id
        status = 200

        async def emit(kind: str, payload: Any) -> None:
            key = "usage" if kind == "done" else "data"
            await self._deliver(encode({"type": kind, "id": request_id, key: payload}))

        def bind(exchange: Exchange) -> None:
            self._exchanges[request_id] = exchange

        try:
            await self._endpoints.run(endpoint, body, info, emit, bind)
        except ClientGone:
            status = 499
        except asyncio.CancelledError:
            status = 499
            last: GatewayError | None = None
            if self._expired is not None:
                status = self._expired.status
                self._metrics.observe_error(LABEL, self._expired.type, self._expired.code)
                last = self._expired
            elif request_id in self._cancelled and self._close is None:
                last = _cancelled_error()
            if last is not None:
                with contextlib.suppress(ClientGone):
                    await self._deliver(encode(error_message(request_id, last)))
            raise
        except GatewayError as exc:
            status = exc.status
            self._metrics.observe_error(LABEL, exc.type, exc.code)
            with contextlib.suppress(ClientGone):
                await self._deliver(encode(error_message(request_id, exc)))
        except Exception as exc:
            status = 500
            error = unexpected_error(info, LABEL, exc)
            with contextlib.suppress(ClientGone):
                await self._deliver(encode(error_message(request_id, error)))
        finally:
            self._tasks.pop(request_id, None)
            self._exchanges.pop(request_id, None)
            self._cancelled.discard(request_id)
            seconds = perf_counter() - info.started
            self._metrics.observe_request(LABEL, info.model, info.provider, status, seconds)
            if self._draining and not self._tasks:
                self._stop(GOING_AWAY, "server shutting down")

    def _stop(self, code: int, reason: str) -> None:
        """Close the socket (after its requests are cancelled)."""
        if self._close is None and not self._ending:
            self._close = (code, reason)
            if self._main is not None:
                self._main.cancel()

    # -- drain (streaming/drain.py) ---------------------------------------------------------------

    def drain_began(self) -> None:
        """Take no new request; close once those in flight have finished."""
        self._draining = True
        if not self._tasks:
            self._stop(GOING_AWAY, "server shutting down")

    def drain_expired(self) -> None:
        """Stop the requests in flight: each gets an error message, its record the reason (each
        task sends its own last message, straight to the socket, before it ends)."""
        self._draining = True
        if not self._tasks:
            self._stop(GOING_AWAY, "server shutting down")
            return
        error = self._expired = shutdown_error(self._drain_s)
        for request_id, task in list(self._tasks.items()):
            exchange = self._exchanges.get(request_id)
            if exchange is not None:
                exchange.stopped = error
            task.cancel()


def _cancelled_error() -> GatewayError:
    return _Cancelled("The request was cancelled by the client.", code="request_cancelled")


class _Cancelled(GatewayError):
    status = 499
    type = "invalid_request_error"


def _data(message: Message) -> str | bytes:
    text = message.get("text")
    if text is not None:
        return str(text)
    return bytes(message.get("bytes") or b"")
