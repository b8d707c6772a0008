"""The Responses API's WebSocket mode: a WebSocket upgrade on `/v1/responses` (and
`/ai/responses`), as OpenAI's SDKs open it (`client.responses.connect()`), with the credential
in the upgrade's `Authorization` header (or a `bearer.<key>` subprotocol); the Responses
protocol has no message to authenticate with after opening.

The client sends `response.create` events: the body of `POST /v1/responses` with
`"type": "response.create"` (`stream` is implied; `background` is refused, as OpenAI refuses it
here), optionally a `stream_id` (a lane) and `generate: false` (a warm-up: the response is kept
with no output and no model call, so that later turns can continue from it). The server sends
the same events as the HTTP stream, each with the lane's `stream_id` when the create named one.

Responses of one lane run one after another, in the order sent; lanes run side by side (at most
`websocket.max_in_flight` responses at once). The socket remembers its recent responses, so
that `previous_response_id` continues one made with `store: false` on the same socket.

A request the gateway refuses before its first event is answered with
`{"type": "error", "status": <HTTP status>, "error": {type, code, message, param}}`; a message
that is not a `response.create` (a `response.steer`, say) too, and the socket stays open. A
message over `websocket.max_message_bytes` closes the socket with 1009, a client that does not
read with 4008 (api/ws_send.py); when the socket closes its responses are cancelled (upstream
calls included).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from time import perf_counter
from typing import Any

import orjson
from starlette.websockets import WebSocket

from ai_gateway.api.auth import bearer_subprotocol, can_deny, send_error, socket_authenticator
from ai_gateway.api.middleware import request_id_source
from ai_gateway.api.render import open_stream
from ai_gateway.api.responses_run import Prepared, ResponsesRunner
from ai_gateway.api.ws import TOO_BIG
from ai_gateway.api.ws_send import ClientGone, SocketSender, unexpected_error
from ai_gateway.errors import (
    AuthenticationError,
    GatewayError,
    InvalidRequestError,
    PermissionDeniedError,
)
from ai_gateway.observability.logging import get_logger
from ai_gateway.observability.metrics import Metrics
from ai_gateway.providers.base import JSONObject
from ai_gateway.request_info import RequestInfo
from ai_gateway.responses import output as out
from ai_gateway.responses.records import Turn
from ai_gateway.streaming.config import WebSocketConfig

log = get_logger("ai_gateway.responses_ws")

LABEL = "/responses"
RECENT = 32  # responses a socket remembers for previous_response_id
ENVELOPE = ("type", "stream_id", "generate", "stream")


class ResponsesSocketAPI:
    def __init__(self, config: WebSocketConfig, runner: ResponsesRunner, metrics: Metrics) -> None:
        self._config = config
        self._runner = runner
        self._metrics = metrics
        self._new_id = request_id_source()

    async def serve(self, websocket: WebSocket) -> None:
        scope = websocket.scope
        refusal: GatewayError | None = None
        if not self._config.enabled:
            refusal = PermissionDeniedError(
                "WebSocket is turned off on this gateway (websocket.enabled: false); use "
                'POST /v1/responses with "stream": true (SSE) instead.',
                code="websocket_disabled",
            )
        elif socket_authenticator(scope) is not None:
            refusal = AuthenticationError(
                "Open the socket with an 'Authorization: Bearer <key>' header (or a "
                "bearer.<key> subprotocol): the Responses WebSocket has no auth message.",
                code="missing_api_key",
            )
        if refusal is not None:
            await send_error(websocket.send, refusal, "websocket", can_deny(scope))
            return
        await websocket.accept(subprotocol=bearer_subprotocol(scope))
        socket = RequestInfo.from_scope(scope)

        def new_info() -> RequestInfo:
            return RequestInfo(
                request_id=self._new_id(), principal=socket.principal, client_ip=socket.client_ip
            )

        await ResponsesSession(websocket, self._config, self._runner, self._metrics).run(new_info)


class ResponsesSession:
    """One open socket: its lanes, its responses in flight, its recent responses."""

    def __init__(
        self,
        websocket: WebSocket,
        config: WebSocketConfig,
        runner: ResponsesRunner,
        metrics: Metrics,
    ) -> None:
        self._ws = websocket
        self._config = config
        self._runner = runner
        self._metrics = metrics
        self._sender = SocketSender(websocket, config.send_timeout_s, self._stop)
        self._lanes: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._recent: OrderedDict[str, list[Turn]] = OrderedDict()
        self._close: tuple[int, str] | None = None
        self._main: asyncio.Task[Any] | None = None

    async def run(self, new_info: Any) -> None:
        self._main = asyncio.current_task()
        self._new_info = new_info
        self._sender.start()
        try:
            await self._receive_loop()
        except asyncio.CancelledError:
            if self._close is None or self._main is None or self._main.uncancel() > 0:
                raise
        finally:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._sender.close()
        if self._close is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await self._ws.close(*self._close)

    async def _receive_loop(self) -> None:
        limit = self._config.max_message_bytes
        while True:
            message = await self._ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("text")
            raw = data.encode() if isinstance(data, str) else bytes(message.get("bytes") or b"")
            if len(raw) > limit:
                self._close = (TOO_BIG, f"message larger than {limit} bytes")
                return
            try:
                self._handle(raw)
            except GatewayError as exc:
                try:
                    await self._sender.deliver(_encode(_error_event(exc, None)))
                except ClientGone:
                    return

    def _handle(self, raw: bytes) -> None:
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequestError(
                f"The message is not valid JSON ({exc.msg}); send one JSON event per message.",
                code="invalid_message",
            ) from None
        if not isinstance(event, dict):
            raise InvalidRequestError(
                "An event is a JSON object with a 'type'.", code="invalid_message"
            )
        kind = event.get("type")
        if kind != "response.create":
            raise InvalidRequestError(
                f"Unsupported event type {str(kind)[:64]!r}: this gateway takes "
                "'response.create' events (response.steer is not supported).",
                param="type",
                code="unsupported_event",
            )
        lane = event.get("stream_id")
        if lane is not None and not isinstance(lane, str):
            raise InvalidRequestError("'stream_id' is a string.", param="stream_id")
        if len(self._tasks) >= self._config.max_in_flight:
            raise InvalidRequestError(
                f"{self._config.max_in_flight} responses are in flight on this socket "
                "(websocket.max_in_flight); wait for one to finish.",
                code="too_many_in_flight",
            )
        body = {k: v for k, v in event.items() if k not in ENVELOPE}
        body["stream"] = True
        task = asyncio.create_task(self._create(body, lane, event.get("generate") is not False))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _create(self, body: JSONObject, lane: str | None, generate: bool) -> None:
        info = self._new_info()
        status = 200
        lock = self._lanes.setdefault(lane or "", asyncio.Lock())
        try:
            async with lock:
                await self._respond(body, lane, generate, info)
        except ClientGone:
            status = 499
        except asyncio.CancelledError:
            status = 499
            raise
        except GatewayError as exc:
            status = exc.status
            self._metrics.observe_error(LABEL, exc.type, exc.code)
            with contextlib.suppress(ClientGone):
                await self._put(_error_event(exc, lane))
        except Exception as exc:
            status = 500
            error = unexpected_error(info, LABEL, exc)
            with contextlib.suppress(ClientGone):
                await self._put(_error_event(error, lane))
        finally:
            seconds = perf_counter() - info.started
            self._metrics.observe_request(LABEL, info.model, info.provider, status, seconds)

    async def _respond(
        self, body: JSONObject, lane: str | None, generate: bool, info: RequestInfo
    ) -> None:
        runner = self._runner
        prepared = await runner.prepare(body, info, recent=self._recent)
        if not generate:
            await self._warm_up(prepared, lane)
            return
        chunks, first = await open_stream(runner.chain, prepared.exchange)
        events = runner.events(prepared, chunks, first, self._count_error)
        try:
            async for event in events:
                kind = event["type"]
                if kind in ("response.completed", "response.incomplete"):
                    self._remember(prepared, event["response"])
                elif kind == "error":  # the socket's error event nests its fields
                    fields = {k: event.get(k) for k in ("code", "message", "param")}
                    limited = fields["code"] == "rate_limit_exceeded"
                    fields["type"] = "rate_limit_error" if limited else "server_error"
                    event = {
                        "type": kind,
                        "sequence_number": event["sequence_number"],
                        "error": fields,
                    }
                await self._put(event, lane)
        finally:
            await events.aclose()

    async def _warm_up(self, prepared: Prepared, lane: str | None) -> None:
        """`generate: false`: the response is kept with its input and no output."""
        response = out.response_object(
            prepared.id,
            prepared.created_at,
            prepared.exchange.model,
            prepared.call.echo,
            status="completed",
            output=[],
            usage=out.usage({}),
            completed_at=prepared.created_at,
        )
        await self._runner.keep(prepared, response)
        self._remember(prepared, response)
        created = {**response, "status": "in_progress", "completed_at": None, "usage": None}
        await self._put(
            {"type": "response.created", "sequence_number": 0, "response": created}, lane
        )
        await self._put(
            {"type": "response.completed", "sequence_number": 1, "response": response}, lane
        )

    def _remember(self, prepared: Prepared, response: JSONObject) -> None:
        turns = [*prepared.turns, prepared.turn(list(response.get("output") or ()))]
        self._recent[prepared.id] = turns[-self._runner.keeper.config.max_chain :]
        while len(self._recent) > RECENT:
            self._recent.popitem(last=False)

    def _count_error(self, exc: GatewayError) -> None:
        self._metrics.observe_error(LABEL, exc.type, exc.code)

    async def _put(self, event: JSONObject, lane: str | None = None) -> None:
        if lane is not None:
            event = {**event, "stream_id": lane}
        await self._sender.deliver(_encode(event))

    def _stop(self, code: int, reason: str) -> None:
        if self._close is None:
            self._close = (code, reason)
            if self._main is not None:
                self._main.cancel()


def _error_event(exc: GatewayError, lane: str | None) -> JSONObject:
    event: JSONObject = {"type": "error", "status": exc.status, **exc.to_dict()}
    if lane is not None:
        event["stream_id"] = lane
    return event


def _encode(event: JSONObject) -> str:
    return orjson.dumps(event).decode()
