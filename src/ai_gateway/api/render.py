"""Renderers: a chain's outcome as the HTTP response. The chain never produces bytes; these do.

- JSON: the answer, with the exchange's headers and the route taken (`x-gateway-*`).
- SSE: each chunk as `data: {...}`, then `data: [DONE]`; the usage chunk only when the client
  asked for it (`stream_options.include_usage`). The chain runs inside the response
  (`api/event_stream.py`): an error raised before the first chunk is the HTTP error itself,
  unless the first chunk took longer than the keep-alive interval (the response has then
  started, with keep-alive comments); an error raised after that is sent as a final
  `data: {"error": ...}` event (the client already has a 200) and counted; so is the end of a
  stream the instance's drain stopped.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from urllib.parse import quote

from starlette.responses import Response

from ai_gateway.api.common import JSONResponse
from ai_gateway.api.event_stream import EventStreamResponse
from ai_gateway.errors import GatewayError
from ai_gateway.pipeline.chain import Chain
from ai_gateway.pipeline.exchange import Chunks, Exchange, Kind
from ai_gateway.providers.base import JSONObject
from ai_gateway.request_info import RequestInfo
from ai_gateway.streaming.drain import Drain, shutdown_error
from ai_gateway.streaming.regroup import regrouped
from ai_gateway.streaming.sse import DONE, encode_data

SSE = "text/event-stream"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# Visible ASCII but the escape character itself: left as it is by header_text's encoding.
_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")

ErrorCount = Callable[[GatewayError], None]


def header_text(value: str) -> str:
    """`value` as a header value: printable ASCII as it is, anything else (CR, LF, NUL, other
    control characters, non-ASCII) percent-encoded as UTF-8, so that no name can break or
    split the response. Model names are validated before this; configured upstream ids are
    the operator's text."""
    if value.isascii() and value.isprintable():
        return value
    return quote(value, safe=_HEADER_SAFE)


def route_headers(info: RequestInfo) -> dict[str, str]:
    """Which deployment served the request, and what it took to get there."""
    trace = info.trace
    if trace is None:
        return {}
    headers = {"x-gateway-attempts": str(trace.attempts)}
    if info.cost_usd is not None:
        headers["x-gateway-cost-usd"] = format(info.cost_usd.normalize(), "f")
    served = trace.served_by
    if served is not None:
        headers["x-gateway-model"] = header_text(served.group)
        headers["x-gateway-deployment"] = header_text(served.id)
        headers["x-gateway-provider"] = served.provider
        headers["x-gateway-upstream-model"] = header_text(served.model)
    if trace.fallbacks:
        headers["x-gateway-fallbacks"] = header_text(",".join(trace.fallbacks))
    if trace.hedged:
        headers["x-gateway-hedged"] = "true"
    if trace.truncated_messages:
        headers["x-gateway-truncated-messages"] = str(trace.truncated_messages)
    return headers


def json_answer(result: JSONObject, exchange: Exchange) -> Response:
    return JSONResponse(result, headers={**exchange.headers, **route_headers(exchange.info)})


async def open_stream(chain: Chain, exchange: Exchange) -> tuple[Chunks, JSONObject | None]:
    """Run `chain` for a streamed request, up to the first chunk of its stream (which starts
    every stage's wrapper, pipeline/exchange.py). Until then a failure is an HTTP error."""
    outcome = await chain(exchange)
    if isinstance(outcome, dict):
        raise TypeError("a streamed request's chain answered with JSON")
    options = exchange.chat.parsed.chunking if exchange.kind is Kind.CHAT else None
    if options is not None and options.mode != "raw":  # regrouped for display, SSE and socket
        outcome = regrouped(outcome, options.mode, options.max_delay_ms / 1000)
    return outcome, await anext(outcome, None)


def sse_answer(chain: Chain, exchange: Exchange, count_error: ErrorCount) -> Response:
    """A streamed request: `chain` runs when the response is sent (see the module docstring)."""
    body = _events(chain, exchange, count_error)
    return sse_response(body, exchange, count_error)


def sse_response(
    body: AsyncGenerator[bytes, None], exchange: Exchange, count_error: ErrorCount
) -> Response:
    """`body`, the events of the exchange's stream (it opens the stream, and closes it however
    it ends), as an SSE response with the exchange's headers and the route taken."""

    def stopped(drain: Drain) -> GatewayError:
        # The drain's deadline: the record says why (not a client that left), the client too.
        error = exchange.stopped = shutdown_error(drain.timeout_s)
        return error

    return EventStreamResponse(
        body,
        headers=lambda: {**SSE_HEADERS, **exchange.headers, **route_headers(exchange.info)},
        on_expire=stopped,
        on_error=count_error,
    )


def opened_sse_response(
    body: AsyncGenerator[bytes, None], chunks: Chunks, exchange: Exchange, count_error: ErrorCount
) -> Response:
    """`sse_response` for a stream opened before the response (`open_stream`: the Messages and
    Responses APIs render their own events from its chunks): closing the body closes `chunks`
    too, which runs every stage's clean-up."""
    return sse_response(_closing(body, chunks), exchange, count_error)


async def _closing(
    body: AsyncGenerator[bytes, None], chunks: Chunks
) -> AsyncGenerator[bytes, None]:
    try:
        async for event in body:
            yield event
    finally:
        try:
            await body.aclose()
        finally:
            await chunks.aclose()


def visible(chunk: JSONObject, include_usage: bool) -> JSONObject | None:
    """The chunk as the client gets it: without its usage unless the client asked for it (then
    a usage-only chunk is not sent at all). Shared by SSE and the WebSocket (api/ws.py)."""
    if include_usage:
        return chunk
    chunk.pop("usage", None)
    return chunk if chunk.get("choices") else None


async def _events(
    chain: Chain, exchange: Exchange, count_error: ErrorCount
) -> AsyncGenerator[bytes, None]:
    """The stream's events; a GatewayError before its first chunk passes through."""
    include_usage = exchange.include_usage

    def event(chunk: JSONObject) -> bytes | None:
        shown = visible(chunk, include_usage)
        return None if shown is None else encode_data(shown)

    chunks, first = await open_stream(chain, exchange)
    try:
        if first is not None:
            data = event(first)
            if data is not None:
                yield data
            async for chunk in chunks:
                data = event(chunk)
                if data is not None:
                    yield data
    except GatewayError as exc:
        count_error(exc)
        yield encode_data(exc.to_dict())
        return
    finally:
        await chunks.aclose()
    yield DONE
