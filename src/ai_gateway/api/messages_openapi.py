"""The Anthropic Messages API's part of GET /openapi.json (POST /messages and
/messages/count_tokens, under /ai and /v1): the request models that validate them
(messages/schema.py) and the shapes of their answers and errors."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ai_gateway.api.openapi_sse import sse_content
from ai_gateway.messages.schema import CountTokensRequest, MessagesRequest

_REF = "#/components/schemas/{model}"
_OPEN = ConfigDict(extra="allow")


class AnthropicUsage(BaseModel):
    model_config = _OPEN
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class AnthropicMessage(BaseModel):
    """The answer: Anthropic's message (from an Anthropic model, as it sent it)."""

    model_config = _OPEN
    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[dict[str, Any]]
    stop_reason: str | None
    stop_sequence: str | None
    usage: AnthropicUsage


class MessageTokensCount(BaseModel):
    input_tokens: int


class AnthropicErrorObject(BaseModel):
    model_config = _OPEN
    type: str
    message: str
    code: str | None = None  # the gateway's own code (rate_limit_exceeded, ...)


class AnthropicError(BaseModel):
    model_config = _OPEN
    type: Literal["error"]
    error: AnthropicErrorObject
    request_id: str | None = None


MESSAGES_SCHEMAS: list[type[BaseModel]] = [
    MessagesRequest,
    CountTokensRequest,
    AnthropicMessage,
    MessageTokensCount,
    AnthropicError,
]

_ERRORS = {
    "400": "invalid_request_error: a field fails validation (the message names it), a request "
    "limit, a content rule, or a field the model's provider cannot take "
    "(unsupported_for_provider, naming the field).",
    "401": "authentication_error: missing or refused key (x-api-key or Authorization: Bearer).",
    "402": "billing_error: the budget is used up.",
    "403": "permission_error: the key may not use this model.",
    "404": "not_found_error: unknown model.",
    "429": "rate_limit_error: a rate limit or the budget reserved by requests in flight.",
    "502": "api_error: the upstream failed.",
    "503": "overloaded_error: the upstream is overloaded or unavailable.",
    "504": "timeout_error: the upstream did not answer in time.",
}


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF.format(model=name)}}}


def _errors() -> dict[str, Any]:
    return {
        code: {"description": text, "content": _json("AnthropicError")}
        for code, text in _ERRORS.items()
    }


def messages_paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    security: list[dict[str, list[str]]] = [{"bearer": []}, {"x_api_key": []}]
    for prefix in ("/ai", "/v1"):
        name = prefix.strip("/")
        paths[f"{prefix}/messages"] = {
            "post": {
                "operationId": f"{name}_create_message",
                "summary": "Anthropic Messages API: a message, to any provider",
                "security": security,
                "requestBody": {"required": True, "content": _json("MessagesRequest")},
                "responses": {
                    "200": {
                        "description": "The message (JSON); with `stream`, Anthropic's events "
                        "(`event:` and `data:` lines): message_start, content_block_start, "
                        "content_block_delta, content_block_stop, message_delta, message_stop, "
                        "ping, and error for a failure after the first event.",
                        "content": {
                            **_json("AnthropicMessage"),
                            **sse_content(),
                        },
                    },
                    **_errors(),
                },
            }
        }
        paths[f"{prefix}/messages/count_tokens"] = {
            "post": {
                "operationId": f"{name}_count_message_tokens",
                "summary": "Anthropic Messages API: the prompt's input tokens (gateway's count)",
                "security": security,
                "requestBody": {"required": True, "content": _json("CountTokensRequest")},
                "responses": {
                    "200": {"description": "The count", "content": _json("MessageTokensCount")},
                    **_errors(),
                },
            }
        }
    return paths
