"""Anthropic Messages wire format: ``POST /v1/messages`` (JSON and SSE), errors and auth.

Auth is the ``x-api-key`` header; ``anthropic-version`` is required (400 without it).
Errors are ``{"type": "error", "error": {"type", "message"}, "request_id"}`` with a
matching ``request-id`` header; an ``error_event`` fault sends ``event: error`` with an
``overloaded_error`` mid-stream.  A ``safety_block`` fault ends the message with
``stop_reason: "refusal"`` (empty content at the prompt stage, half the text otherwise).
The stream's ``message_start`` reports ``output_tokens: 1`` like the API does; the final
count is in ``message_delta`` (cumulative), equal to the non-streaming ``usage``.
Prompt caching is emulated (``anthropic_cache``): blocks marked with ``cache_control`` make
``cache_creation_input_tokens`` the first time and ``cache_read_input_tokens`` afterwards, in
the usage and in the stream's ``message_start``; ``input_tokens`` is the rest of the prompt.
Extended thinking (``thinking: {"type": "enabled"}``) is emulated with signed thinking blocks
(``anthropic_thinking``); a thinking block sent back must keep the signature it was given.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from ai_gateway.emulator import model as m
from ai_gateway.emulator.anthropic_cache import cache_usage
from ai_gateway.emulator.anthropic_parse import MessagesRequest, parse_request
from ai_gateway.emulator.anthropic_thinking import (
    check_signatures,
    thinking_block,
    thinking_frames,
    thinking_tokens,
    wants_thinking,
)
from ai_gateway.emulator.faults import Fault
from ai_gateway.emulator.flow import Answer, Dialect, EmulatorError, serve, sse_event
from ai_gateway.emulator.settings import EmulatorSettings
from ai_gateway.emulator.state import state_of
from ai_gateway.emulator.text import split_fragments

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_FAULT_MESSAGES = {
    400: "Invalid request (emulated fault).",
    401: "invalid x-api-key",
    403: "Your API key does not have permission to use the specified resource.",
    404: "model: {model}",
    413: "Request exceeds the maximum allowed number of bytes.",
    429: "This request would exceed the rate limit for your organization (emulated fault).",
    500: "Internal server error",
    529: "Overloaded",
}
_STOP_REASONS = {
    "stop": "end_turn",
    "stop_sequence": "stop_sequence",
    "length": "max_tokens",
    "tool_calls": "tool_use",
}


def _error_type(status: int) -> str:
    default = "api_error" if status >= 500 else "invalid_request_error"
    return _ERROR_TYPES.get(status, default)


class AnthropicDialect(Dialect):
    provider = "anthropic"

    def authenticate(self, request: web.Request, settings: EmulatorSettings) -> None:
        key = request.headers.get("x-api-key")
        if key is None:
            raise EmulatorError(401, "x-api-key header is required")
        if not settings.accepts(key):
            raise EmulatorError(401, "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            raise EmulatorError(400, "anthropic-version: header is required")

    def error_body(self, err: EmulatorError) -> Any:
        error = {"type": _error_type(err.status), "message": err.message}
        return {"type": "error", "error": error}

    def error_response(self, err: EmulatorError) -> web.Response:
        response = super().error_response(err)
        request_id = response.headers["request-id"]
        body = {**self.error_body(err), "request_id": request_id}
        response.body = self.render_json(body)
        return response

    def fault_error(self, fault: Fault, model: str) -> EmulatorError:
        message = _FAULT_MESSAGES.get(fault.status, f"Emulated fault: HTTP {fault.status}.")
        return EmulatorError(
            fault.status, message.format(model=model), retry_after=fault.retry_after
        )

    def overloaded(self) -> EmulatorError:
        return EmulatorError(529, "Overloaded")

    def invalid_json(self) -> EmulatorError:
        return EmulatorError(400, "The request body is not valid JSON.")

    def stream_error_frame(self) -> bytes | None:
        error = {"type": "overloaded_error", "message": "Overloaded"}
        return sse_event("error", {"type": "error", "error": error})

    def keepalive_frame(self) -> bytes:
        return sse_event("ping", {"type": "ping"})

    def headers(self) -> dict[str, str]:
        return {"request-id": "req_" + uuid.uuid4().hex[:24]}


DIALECT = AnthropicDialect()


def _blocks(completion: m.Completion) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if completion.text:
        blocks.append({"type": "text", "text": completion.text})
    blocks += [
        {"type": "tool_use", "id": "toolu_" + c.id, "name": c.name, "input": dict(c.arguments)}
        for c in completion.tool_calls
    ]
    return blocks


def _usage(prompt: int, completion: int, cache: tuple[int, int]) -> dict[str, Any]:
    read, written = cache
    return {
        "input_tokens": prompt - read - written,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
        "output_tokens": completion,
    }


def _stream(message: dict[str, Any], completion: m.Completion) -> list[bytes]:
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**message["usage"], "output_tokens": 1}
    frames = [sse_event("message_start", {"type": "message_start", "message": start})]
    content = message["content"]
    thought = 1 if content and content[0]["type"] == "thinking" else 0
    if thought:
        frames += thinking_frames(content[0], 0)
    for index, block in enumerate(content[thought:], start=thought):
        opening = {**block, "text": ""} if block["type"] == "text" else {**block, "input": {}}
        frames.append(
            sse_event(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": opening},
            )
        )
        if index == thought:
            frames.append(sse_event("ping", {"type": "ping"}))
        if block["type"] == "text":
            deltas = [{"type": "text_delta", "text": p} for p in completion.pieces]
        else:
            arguments = completion.tool_calls[index - thought - (1 if completion.text else 0)]
            deltas = [
                {"type": "input_json_delta", "partial_json": fragment}
                for fragment in split_fragments(arguments.arguments_json)
            ]
        frames += [
            sse_event(
                "content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}
            )
            for d in deltas
        ]
        frames.append(
            sse_event("content_block_stop", {"type": "content_block_stop", "index": index})
        )
    if not message["content"]:
        frames.append(sse_event("ping", {"type": "ping"}))
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
    usage = {"output_tokens": message["usage"]["output_tokens"]}
    frames.append(
        sse_event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
    )
    frames.append(sse_event("message_stop", {"type": "message_stop"}))
    return frames


def _render(
    req: MessagesRequest,
    completion: m.Completion,
    refused: bool,
    cache: tuple[int, int],
    thought: dict[str, Any] | None = None,
) -> Answer:
    prompt_tokens = m.prompt_tokens(req.prompt)
    output = completion.tokens + (thinking_tokens(thought) if thought else 0)
    message = {
        "id": "msg_" + uuid.uuid4().hex[:24],
        "type": "message",
        "role": "assistant",
        "model": req.model,
        "content": ([thought] if thought else []) + _blocks(completion),
        "stop_reason": "refusal" if refused else _STOP_REASONS[completion.finish],
        "stop_sequence": completion.stop_sequence,
        "usage": _usage(prompt_tokens, output, cache),
    }
    if not req.stream:
        return Answer(prompt_tokens, output, body=message)
    return Answer(prompt_tokens, output, frames=_stream(message, completion))


async def _build(request: web.Request, body: Any, fault: Fault | None) -> Answer:
    req = parse_request(body)
    check_signatures(body)
    thinking = wants_thinking(body)
    cache = cache_usage(req.model, body, state_of(request).prompt_cache)
    completion = m.complete(req.prompt)[0]
    refused = fault is not None and fault.kind == "safety_block"
    if refused and fault is not None:
        completion = (
            m.Completion(text="", finish="stop")
            if fault.stage == "prompt"
            else completion.truncated_for_safety()
        )
    users = [t.text for t in req.prompt.turns if t.role == "user"]
    thought = thinking_block(users[-1] if users else "") if thinking and not refused else None
    return _render(req, completion, refused, cache, thought)


def _model_of(request: web.Request, body: Any) -> str:
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else ""


async def messages(request: web.Request) -> web.StreamResponse:
    return await serve(request, DIALECT, _build, _model_of)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/messages", messages)
