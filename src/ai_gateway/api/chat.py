"""POST /ai/chat/completions and /v1/chat/completions."""

from __future__ import annotations

from urllib.parse import quote

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ai_gateway.api.common import BodyLimit, JSONResponse, cancel_on_disconnect, read_json
from ai_gateway.pipeline.chat import ChatPipeline
from ai_gateway.pipeline.fanout import Fanout
from ai_gateway.pipeline.gate import RequestGate
from ai_gateway.providers.base import ChatRequest, EmbeddingsCall
from ai_gateway.request_info import RequestInfo
from ai_gateway.schemas.chat import GATEWAY_FIELDS, ChatCompletionRequest
from ai_gateway.schemas.embeddings import EmbeddingsRequest
from ai_gateway.schemas.validation import parse_body
from ai_gateway.security.admission import Ticket

SSE = "text/event-stream"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# Visible ASCII but the escape character itself: left as it is by header_text's encoding.
_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")


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


class CompletionsAPI:
    def __init__(self, pipeline: ChatPipeline, gate: RequestGate, body: BodyLimit) -> None:
        self._pipeline = pipeline
        self._gate = gate
        self._fanout_of = Fanout(pipeline, gate)
        self._limit = body

    async def chat(self, request: Request) -> Response:
        gate = self._gate
        receive = request.receive
        body = await read_json(request, self._limit)
        gate.check_chat(body)
        parsed = parse_body(ChatCompletionRequest, body)
        if any(name in body for name in GATEWAY_FIELDS):
            body = {k: v for k, v in body.items() if k not in GATEWAY_FIELDS}
        info = RequestInfo.from_scope(request.scope)
        calls = parsed.models or (parsed.model,)  # a fan-out calls its branches' models
        gate.check_models(calls, info)
        ticket = (
            await gate.admit(calls, info, lambda: self._pipeline.charges.max_cost(calls, body))
            if gate.may_limit(calls, info)
            else None
        )
        settled = False
        try:
            chat = ChatRequest(body=body, parsed=parsed)
            mode = (parsed.fanout or "all") if parsed.models else None
            headers: dict[str, str] = {"x-gateway-fanout": mode} if mode else {}
            if mode == "all":  # each model's content rules apply to its own branch
                result = await cancel_on_disconnect(self._fanout_of.all(chat, info), receive)
                return JSONResponse(result, headers=headers)
            if not mode:
                chat = await gate.guard_input(chat, parsed.model, info)
            if parsed.stream:
                opening = (
                    self._fanout_of.first_stream(chat, info)
                    if mode
                    else self._pipeline.open_stream(
                        chat, info, gate.chunk_guard(parsed.model, info)
                    )
                )
                stream = await cancel_on_disconnect(opening, receive)
                settled = True  # from here on, when the stream ends
                headers |= {**SSE_HEADERS, **route_headers(info), **_limit_headers(ticket)}
                if ticket is None:  # nothing to settle: no wrapper around every chunk
                    return StreamingResponse(stream, media_type=SSE, headers=headers)
                body = gate.settle_after(stream, ticket, info)
                return StreamingResponse(
                    body,
                    media_type=SSE,
                    headers=headers,
                    # Also after the response: for a client gone mid-way the server leaves the
                    # stream suspended (closed here, so that it is recorded, then charged); for
                    # one gone before it started, its generator never reaches its `finally`.
                    background=BackgroundTask(gate.finish, body, stream, ticket, info),
                )
            if mode:
                result = await cancel_on_disconnect(self._fanout_of.first(chat, info), receive)
            else:
                result = await cancel_on_disconnect(self._pipeline.complete(chat, info), receive)
                result = await gate.guard_output(result, parsed.model, info)
            headers.update(route_headers(info))
            if ticket is not None:
                headers.update(ticket.headers)
            return JSONResponse(result, headers=headers)
        finally:
            if ticket is not None and not settled:
                await gate.settle(ticket, info)

    async def embeddings(self, request: Request) -> Response:
        gate = self._gate
        body = await read_json(request, self._limit)
        gate.check_embeddings(body)
        parsed = parse_body(EmbeddingsRequest, body)
        info = RequestInfo.from_scope(request.scope)
        calls = (parsed.model,)
        gate.check_models(calls, info)
        ticket = (
            await gate.admit(calls, info, lambda: self._pipeline.charges.max_cost(calls, body))
            if gate.may_limit(calls, info)
            else None
        )
        try:
            call = await gate.guard_embeddings(
                EmbeddingsCall(body=body, parsed=parsed), parsed.model, info
            )
            result = await cancel_on_disconnect(
                self._pipeline.embeddings(call, info), request.receive
            )
        finally:
            if ticket is not None:
                await gate.settle(ticket, info)
        return JSONResponse(result, headers={**route_headers(info), **_limit_headers(ticket)})


def _limit_headers(ticket: Ticket | None) -> dict[str, str]:
    return ticket.headers if ticket is not None else {}
