"""OpenAI wire format: ``POST /v1/chat/completions`` (JSON and SSE), errors and auth.

Embeddings and the model listing live in :mod:`ai_gateway.emulator.openai_embeddings`.
Quirk kept on purpose: like OpenAI, a tool call forced with ``tool_choice: {"type":
"function", ...}`` finishes with ``"stop"``, not ``"tool_calls"``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from aiohttp import web

from ai_gateway.emulator import model as m
from ai_gateway.emulator import openai_embeddings
from ai_gateway.emulator.faults import Fault
from ai_gateway.emulator.flow import Answer, Dialect, EmulatorError, serve, sse_data
from ai_gateway.emulator.openai_parse import ChatRequest, invalid, parse_chat
from ai_gateway.emulator.settings import EmulatorSettings
from ai_gateway.emulator.text import split_fragments, stable_id

_STATUS_MESSAGES = {
    400: ("invalid_request_error", None, "Invalid request (emulated fault)."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", None, "You are not allowed to access this resource."),
    404: ("invalid_request_error", "model_not_found", "The model `{model}` does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for {model} on requests."),
    500: ("server_error", None, "The server had an error while processing your request."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


class OpenAIDialect(Dialect):
    provider = "openai"

    def authenticate(self, request: web.Request, settings: EmulatorSettings) -> None:
        header = request.headers.get("Authorization", "")
        if not header:
            raise EmulatorError(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not settings.accepts(key.strip()):
            raise EmulatorError(
                401,
                "Incorrect API key provided. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )

    def error_body(self, err: EmulatorError) -> Any:
        fallback = "server_error" if err.status >= 500 else "invalid_request_error"
        kind = _STATUS_MESSAGES.get(err.status, (fallback,))[0]
        return {
            "error": {"message": err.message, "type": kind, "param": err.param, "code": err.code}
        }

    def fault_error(self, fault: Fault, model: str) -> EmulatorError:
        default = ("", None, f"Emulated fault: HTTP {fault.status}.")
        _, code, message = _STATUS_MESSAGES.get(fault.status, default)
        return EmulatorError(
            fault.status, message.format(model=model), code=code, retry_after=fault.retry_after
        )

    def overloaded(self) -> EmulatorError:
        return EmulatorError(503, _STATUS_MESSAGES[503][2])

    def invalid_json(self) -> EmulatorError:
        return invalid(
            "We could not parse the JSON body of your request. The OpenAI API expects a JSON "
            "payload, but what was sent was not valid JSON."
        )

    def stream_error_frame(self) -> bytes | None:
        message = "The server had an error while processing your request. Sorry about that!"
        error = {"message": message, "type": "server_error", "param": None, "code": None}
        return sse_data({"error": error})

    def headers(self) -> dict[str, str]:
        return {"x-request-id": "req_" + uuid.uuid4().hex, "openai-version": "2020-10-01"}


DIALECT = OpenAIDialect()


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _finish(completion: m.Completion, chat: ChatRequest, filtered: bool) -> str:
    if filtered:
        return "content_filter"
    if completion.finish == "tool_calls":
        return "stop" if chat.forced_tool else "tool_calls"
    return "length" if completion.finish == "length" else "stop"


def _tool_call(call: m.ToolCall) -> dict[str, Any]:
    function = {"name": call.name, "arguments": call.arguments_json}
    return {"id": "call_" + call.id, "type": "function", "function": function}


def _message(completion: m.Completion) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None if completion.tool_calls else completion.text,
        "refusal": None,
        "annotations": [],
    }
    if completion.tool_calls:
        message["tool_calls"] = [_tool_call(c) for c in completion.tool_calls]
    return message


def _choice_deltas(index: int, completion: m.Completion, finish: str) -> list[dict[str, Any]]:
    """The successive ``choices[0]`` entries of one choice's stream chunks."""
    deltas: list[dict[str, Any]] = []
    for k, call in enumerate(completion.tool_calls):
        header = {"index": k, **_tool_call(call)}
        header["function"] = {"name": call.name, "arguments": ""}
        deltas.append({"tool_calls": [header]})
        deltas += [
            {"tool_calls": [{"index": k, "function": {"arguments": fragment}}]}
            for fragment in split_fragments(call.arguments_json)
        ]
    if completion.tool_calls:
        deltas[0] = {"role": "assistant", "content": None, **deltas[0], "refusal": None}
    else:
        deltas = [{"role": "assistant", "content": "", "refusal": None}]
        deltas += [{"content": piece} for piece in completion.pieces]
    entries: list[dict[str, Any]] = [
        {"index": index, "delta": d, "logprobs": None, "finish_reason": None} for d in deltas
    ]
    entries.append({"index": index, "delta": {}, "logprobs": None, "finish_reason": finish})
    return entries


def _render(chat: ChatRequest, completions: list[m.Completion], filtered: bool) -> Answer:
    prompt_tokens = m.prompt_tokens(chat.prompt)
    completion_tokens = sum(c.tokens for c in completions)
    usage = _usage(prompt_tokens, completion_tokens)
    kind = "chat.completion.chunk" if chat.stream else "chat.completion"
    head = {
        "id": "chatcmpl-" + uuid.uuid4().hex[:29],
        "object": kind,
        "created": int(time.time()),
        "model": chat.model,
        "service_tier": "default",
        "system_fingerprint": stable_id("fp_", chat.model, length=10),
    }
    finishes = [_finish(c, chat, filtered) for c in completions]
    if not chat.stream:
        choices = [
            {"index": i, "message": _message(c), "logprobs": None, "finish_reason": finishes[i]}
            for i, c in enumerate(completions)
        ]
        body = {**head, "choices": choices, "usage": usage}
        return Answer(prompt_tokens, completion_tokens, body=body)
    per_choice = [_choice_deltas(i, c, finishes[i]) for i, c in enumerate(completions)]
    extra = {"usage": None} if chat.include_usage else {}
    frames = [
        sse_data({**head, "choices": [entries[step]], **extra})
        for step in range(max(len(e) for e in per_choice))
        for entries in per_choice
        if step < len(entries)
    ]
    if chat.include_usage:
        frames.append(sse_data({**head, "choices": [], "usage": usage}))
    frames.append(b"data: [DONE]\n\n")
    return Answer(prompt_tokens, completion_tokens, frames=frames)


async def _build_chat(request: web.Request, body: Any, fault: Fault | None) -> Answer:
    chat = parse_chat(body)
    filtered = fault is not None and fault.kind == "safety_block"
    if filtered and fault is not None and fault.stage == "prompt":
        raise invalid(
            "The prompt was filtered due to triggering the content management policy.",
            "prompt",
            "content_filter",
        )
    completions = m.complete(chat.prompt)
    if filtered:
        completions = [c.truncated_for_safety() for c in completions]
    return _render(chat, completions, filtered)


def _model_of(request: web.Request, body: Any) -> str:
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else ""


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await serve(request, DIALECT, _build_chat, _model_of)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", chat_completions)
    openai_embeddings.add_routes(app, DIALECT, _model_of)
