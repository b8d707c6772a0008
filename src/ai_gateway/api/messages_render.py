"""Renderers of the Messages API (api/messages.py): the chain's outcome as Anthropic's JSON
`message` or its server-sent events (`event: <type>` and `data: <json>` lines), and gateway
errors as Anthropic's error JSON. The shapes themselves are made in `messages/`.

A stream's error after its first event (the client has a 200) is sent as Anthropic's `error`
event, `{"type": "error", "error": {...}}`, and counted; the stream then ends. Every response
carries the request id as `request-id`, the header Anthropic's SDKs read.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping

import orjson
from starlette.responses import Response

from ai_gateway.api.common import JSONResponse
from ai_gateway.api.render import ErrorCount, opened_sse_response, route_headers
from ai_gateway.errors import GatewayError
from ai_gateway.messages.errors import error_dict, error_json
from ai_gateway.messages.response import to_message
from ai_gateway.messages.stream import MessageEvents
from ai_gateway.pipeline.exchange import Chunks, Exchange
from ai_gateway.providers.base import JSONObject

REQUEST_ID = "request-id"


def error_response(
    exc: GatewayError, request_id: str | None, headers: Mapping[str, str] | None = None
) -> Response:
    merged = {**exc.headers, **(headers or {})}
    if request_id:
        merged[REQUEST_ID] = request_id
    return Response(
        error_json(exc, request_id),
        status_code=exc.status,
        headers=merged,
        media_type="application/json",
    )


def _headers(exchange: Exchange) -> dict[str, str]:
    info = exchange.info
    return {**exchange.headers, **route_headers(info), REQUEST_ID: info.request_id}


def message_answer(completion: JSONObject, exchange: Exchange) -> Response:
    return JSONResponse(to_message(completion, exchange.model), headers=_headers(exchange))


def message_stream(
    chunks: Chunks, first: JSONObject | None, exchange: Exchange, count_error: ErrorCount
) -> Response:
    exchange.headers[REQUEST_ID] = exchange.info.request_id
    body = _events(chunks, first, MessageEvents(exchange.model), count_error, exchange)
    return opened_sse_response(body, chunks, exchange, count_error)


def frames(events: list[JSONObject]) -> bytes:
    return b"".join(
        b"event: %s\ndata: %s\n\n" % (str(e["type"]).encode(), orjson.dumps(e)) for e in events
    )


async def _events(
    chunks: Chunks,
    first: JSONObject | None,
    renderer: MessageEvents,
    count_error: ErrorCount,
    exchange: Exchange,
) -> AsyncGenerator[bytes, None]:
    try:
        if first is not None:
            data = frames(renderer.feed(first))
            if data:
                yield data
            async for chunk in chunks:
                data = frames(renderer.feed(chunk))
                if data:
                    yield data
        data = frames(renderer.close())
        if data:
            yield data
    except GatewayError as exc:
        count_error(exc)
        yield frames([error_dict(exc, exchange.info.request_id)])
    finally:
        await chunks.aclose()
