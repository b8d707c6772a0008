"""Gemini wire format: ``generateContent``, ``streamGenerateContent``, errors and auth.

Routes are ``POST /v1beta/models/{model}:{method}`` (also under ``/v1``).  The key comes
from ``x-goog-api-key`` or ``?key=``; like Google, a missing key is 403
``PERMISSION_DENIED`` and a rejected key is 400 ``INVALID_ARGUMENT`` with an
``API_KEY_INVALID`` ``ErrorInfo`` detail.  ``streamGenerateContent?alt=sse`` sends
``data: {GenerateContentResponse}`` frames separated by CRLF (no ``[DONE]``); without
``alt=sse`` it streams a JSON array.  Every stream frame carries ``usageMetadata`` with the
cumulative ``candidatesTokenCount``; zero-valued counts are omitted as in proto JSON.  A
429 fault's ``retry_after`` becomes a ``google.rpc.RetryInfo`` detail.  An ``error_event``
fault sends ``data: {"error": {...UNAVAILABLE}}`` mid-stream (observed behaviour; the
reference documents no in-stream error form).  ``safety_block`` at the prompt stage answers
``promptFeedback.blockReason: SAFETY`` with no candidates; at the response stage the
candidates stop halfway with ``finishReason: SAFETY``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp import web

from ai_gateway.emulator import catalog, gemini_embeddings
from ai_gateway.emulator import model as m
from ai_gateway.emulator.faults import Fault
from ai_gateway.emulator.flow import Answer, Dialect, EmulatorError, dumps, serve, sse_data
from ai_gateway.emulator.gemini_parse import not_found, parse_request, split_target
from ai_gateway.emulator.settings import EmulatorSettings

_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_FAULT_MESSAGES = {
    400: "Request contains an invalid argument.",
    401: "Request had invalid authentication credentials.",
    403: "The caller does not have permission",
    404: "models/{model} is not found for API version v1beta.",
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}
_CATEGORIES = (
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
)
_FINISH = {"stop": "STOP", "stop_sequence": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}


class GeminiDialect(Dialect):
    provider = "gemini"

    def authenticate(self, request: web.Request, settings: EmulatorSettings) -> None:
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            raise EmulatorError(
                403,
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to call "
                "this API.",
            )
        if not settings.accepts(key):
            info = {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
            raise EmulatorError(
                400, "API key not valid. Please pass a valid API key.", details=[info]
            )

    def error_body(self, err: EmulatorError) -> Any:
        error: dict[str, Any] = {
            "code": err.status,
            "message": err.message,
            "status": _STATUSES.get(err.status, "INTERNAL" if err.status >= 500 else "UNKNOWN"),
        }
        if err.details:
            error["details"] = err.details
        return {"error": error}

    def fault_error(self, fault: Fault, model: str) -> EmulatorError:
        message = _FAULT_MESSAGES.get(fault.status, f"Emulated fault: HTTP {fault.status}.")
        details = None
        if fault.retry_after is not None:
            delay = f"{fault.retry_after:g}s"
            details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}]
        return EmulatorError(fault.status, message.format(model=model), details=details)

    def overloaded(self) -> EmulatorError:
        return EmulatorError(503, _FAULT_MESSAGES[503])

    def invalid_json(self) -> EmulatorError:
        return EmulatorError(400, "Invalid JSON payload received. Unexpected token.")

    def stream_error_frame(self) -> bytes | None:
        return sse_data({"error": self.error_body(self.overloaded())["error"]}, "\r\n")

    def render_json(self, body: Any) -> bytes:
        return json.dumps(body, indent=2, ensure_ascii=False).encode()


DIALECT = GeminiDialect()


def _ratings(blocked: bool = False) -> list[dict[str, Any]]:
    ratings: list[dict[str, Any]] = []
    for category in _CATEGORIES:
        rating: dict[str, Any] = {"category": category, "probability": "NEGLIGIBLE"}
        if blocked and category == "HARM_CATEGORY_HARASSMENT":
            rating = {"category": category, "probability": "HIGH", "blocked": True}
        ratings.append(rating)
    return ratings


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    usage: dict[str, Any] = {"promptTokenCount": prompt}
    if completion:
        usage["candidatesTokenCount"] = completion
    usage["totalTokenCount"] = prompt + completion
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
    return usage


def _parts(text: str, completion: m.Completion) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"text": text}] if text else []
    parts += [
        {"functionCall": {"name": c.name, "args": dict(c.arguments)}} for c in completion.tool_calls
    ]
    return parts


def _candidate(
    index: int, completion: m.Completion, text: str, finish: str | None, blocked: bool
) -> dict[str, Any]:
    candidate: dict[str, Any] = {}
    parts = _parts(text, completion)
    if parts:
        candidate["content"] = {"parts": parts, "role": "model"}
    if finish is not None:
        candidate["finishReason"] = finish
    candidate["index"] = index
    if finish is not None:
        candidate["safetyRatings"] = _ratings(blocked)
    return candidate


def _steps(index: int, completion: m.Completion, finish: str, blocked: bool) -> list[Any]:
    """(candidate, tokens) per stream frame for one candidate."""
    if completion.tool_calls:
        return [(_candidate(index, completion, "", finish, blocked), completion.tokens)]
    pieces = completion.pieces or [""]
    text_only = m.Completion(text="", finish=completion.finish)
    return [
        (
            _candidate(index, text_only, piece, finish if k == len(pieces) - 1 else None, blocked),
            1 if piece else 0,
        )
        for k, piece in enumerate(pieces)
    ]


def _render(
    model: str, prompt: m.Prompt, completions: list[m.Completion], blocked: bool, stream: str
) -> Answer:
    prompt_tokens = m.prompt_tokens(prompt)
    completion_tokens = sum(c.tokens for c in completions)
    tail = {"modelVersion": model, "responseId": uuid.uuid4().hex[:22]}
    finishes = ["SAFETY" if blocked else _FINISH[c.finish] for c in completions]
    if not stream:
        candidates = [
            _candidate(i, c, c.text, finishes[i], blocked) for i, c in enumerate(completions)
        ]
        body = {
            "candidates": candidates,
            "usageMetadata": _usage(prompt_tokens, completion_tokens),
            **tail,
        }
        return Answer(prompt_tokens, completion_tokens, body=body)
    per_candidate = [_steps(i, c, finishes[i], blocked) for i, c in enumerate(completions)]
    chunks: list[dict[str, Any]] = []
    served = 0
    for step in range(max(len(s) for s in per_candidate)):
        present = [s[step] for s in per_candidate if step < len(s)]
        served += sum(tokens for _, tokens in present)
        chunks.append(
            {
                "candidates": [candidate for candidate, _ in present],
                "usageMetadata": _usage(prompt_tokens, served),
                **tail,
            }
        )
    return Answer(prompt_tokens, completion_tokens, frames=_frames(chunks, stream))


def _frames(chunks: list[dict[str, Any]], stream: str) -> list[bytes]:
    if stream == "sse":
        return [sse_data(chunk, "\r\n") for chunk in chunks]
    texts = [json.dumps(chunk, indent=2) for chunk in chunks]
    frames = [("[" if i == 0 else ",\r\n") + text for i, text in enumerate(texts)]
    frames[-1] += "]"
    return [frame.encode() for frame in frames]


def _prompt_blocked(model: str, prompt: m.Prompt, stream: str) -> Answer:
    tokens = m.prompt_tokens(prompt)
    body = {
        "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": _ratings(blocked=True)},
        "usageMetadata": _usage(tokens, 0),
        "modelVersion": model,
        "responseId": uuid.uuid4().hex[:22],
    }
    if not stream:
        return Answer(tokens, 0, body=body)
    return Answer(tokens, 0, frames=_frames([body], stream))


async def _build(request: web.Request, body: Any, fault: Fault | None) -> Answer:
    model, method = split_target(request)
    stream = ""
    if method == "streamGenerateContent":
        stream = "sse" if request.query.get("alt") == "sse" else "json"
    prompt = parse_request(body)
    info = catalog.find("gemini", model)
    if info is None or info.embedding:
        raise not_found(model, method)
    if fault is not None and fault.kind == "safety_block" and fault.stage == "prompt":
        return _prompt_blocked(model, prompt, stream)
    blocked = fault is not None and fault.kind == "safety_block"
    completions = m.complete(prompt)
    if blocked:
        completions = [c.truncated_for_safety() for c in completions]
    answer = _render(model, prompt, completions, blocked, stream)
    if stream == "json":
        answer.content_type = "application/json"
    return answer


def _model_of(request: web.Request, body: Any) -> str:
    return split_target(request)[0]


async def model_method(request: web.Request) -> web.StreamResponse:
    _, method = split_target(request)
    if method in ("generateContent", "streamGenerateContent"):
        return await serve(request, DIALECT, _build, _model_of)
    if method in ("embedContent", "batchEmbedContents"):
        return await serve(request, DIALECT, gemini_embeddings.build, _model_of)
    return DIALECT.error_response(EmulatorError(404, f"Method not found: {dumps(method)}."))


def add_routes(app: web.Application) -> None:
    for version in ("v1beta", "v1"):
        app.router.add_post(f"/{version}/models/{{target}}", model_method)
    gemini_embeddings.add_routes(app, DIALECT)
