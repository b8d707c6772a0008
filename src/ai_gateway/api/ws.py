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
from ai_gateway.api.ws_send import ClientGone, SocketSender
from ai_gateway.errors import (
    AuthenticationError,
    GatewayError,
    InternalError,
    PermissionDeniedError,
)
from ai_gateway.observability.logging import get_logger
from ai_gateway.observability.metrics import Metrics
from ai_gateway.request_info import RequestInfo
from ai_gateway.streaming.config import WebSocketConfig

log = get_logger("ai_gateway.ws")

LABEL = "/ws"  # the metrics label of the socket's requests
TOO_BIG = 1009
POLICY = 1008
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


class WebSocketAPI:
    def __init__(
        self, config: WebSocketConfig, endpoints: SocketEndpoints, metrics: Metrics
    ) -> None:
        self._config = config
        self._endpoints = endpoints
        self._metrics = metrics
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
        await websocket.accept(subprotocol=bearer_subprotocol(scope))
        info = RequestInfo.from_scope(scope)
        authenticate = socket_authenticator(scope)
        if authenticate is not None and not await self._first_message_auth(websocket):
            return
        session = Session(websocket, self._config, self._endpoints, self._metrics)
        await session.run(lambda: self._request_info(info))

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
    ) -> None:
        self._ws = websocket
        self._config = config
        self._endpoints = endpoints
        self._metrics = metrics
        self._sender = SocketSender(websocket, config.send_timeout_s, self._stop)
        self._deliver = self._sender.deliver
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancelled: set[str] = set()
        self._close: tuple[int, str] | None = None  # why the gateway closes the socket
        self._main: asyncio.Task[Any] | None = None

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
                if self._handle(parse(data)):
                    await self._deliver('{"type":"pong"}')
            except ProtocolError as exc:
                await self._deliver(encode(error_message(exc.request_id, exc)))
            except GatewayError as exc:
                await self._deliver(encode(error_message(None, exc)))
            except ClientGone:
                return

    def _handle(self, incoming: Incoming) -> bool:
        """Act on a client's message; True if it is a ping (to answer)."""
        if incoming.type == "ping":
            return True
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
            return False
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
        return False

    async def _request(self, request_id: str, endpoint: str, body: Any) -> None:
        info = self._new_info()
        if _CLIENT_ID.fullmatch(request_id):
            info.client_request_id = request_id
        status = 200

        async def emit(kind: str, payload: Any) -> None:
            key = "usage" if kind == "done" else "data"
            await self._deliver(encode({"type": kind, "id": request_id, key: payload}))

        try:
            await self._endpoints.run(endpoint, body, info, emit)
        except ClientGone:
            status = 499
        except asyncio.CancelledError:
            status = 499
            if request_id in self._cancelled and self._close is None:
                with contextlib.suppress(ClientGone):
                    await self._deliver(encode(error_message(request_id, _cancelled_error())))
            raise
        except GatewayError as exc:
            status = exc.status
            self._metrics.observe_error(LABEL, exc.type, exc.code)
            with contextlib.suppress(ClientGone):
                await self._deliver(encode(error_message(request_id, exc)))
        except Exception as exc:
            status = 500
            log.error(
                "unhandled_error",
                request_id=info.request_id,
                path=LABEL,
                error_type=type(exc).__name__,
            )
            error = InternalError(
                f"The gateway failed unexpectedly; quote request id {info.request_id} to report it."
            )
            with contextlib.suppress(ClientGone):
                await self._deliver(encode(error_message(request_id, error)))
        finally:
            self._tasks.pop(request_id, None)
            self._cancelled.discard(request_id)
            seconds = perf_counter() - info.started
            self._metrics.observe_request(LABEL, info.model, info.provider, status, seconds)

    def _stop(self, code: int, reason: str) -> None:
        """Close the socket (after its requests are cancelled)."""
        if self._close is None:
            self._close = (code, reason)
            if self._main is not None:
                self._main.cancel()


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
