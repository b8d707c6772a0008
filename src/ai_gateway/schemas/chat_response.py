"""Chat Completions responses and stream chunks, as the gateway returns them (for /openapi.json)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

_OPEN = ConfigDict(extra="allow")

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]


class CompletionTokensDetails(BaseModel):
    model_config = _OPEN
    reasoning_tokens: int | None = None


class PromptTokensDetails(BaseModel):
    model_config = _OPEN
    cached_tokens: int | None = None


class Usage(BaseModel):
    model_config = _OPEN
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None


class ResponseFunctionCall(BaseModel):
    model_config = _OPEN
    name: str
    arguments: str


class ResponseToolCall(BaseModel):
    model_config = _OPEN
    id: str
    type: Literal["function"]
    function: ResponseFunctionCall


class ResponseMessage(BaseModel):
    model_config = _OPEN
    role: Literal["assistant"]
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ResponseToolCall] | None = None


class Choice(BaseModel):
    model_config = _OPEN
    index: int
    message: ResponseMessage
    finish_reason: FinishReason | None
    logprobs: dict[str, Any] | None = None


class ChatCompletion(BaseModel):
    model_config = _OPEN
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[Choice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class ChunkFunctionCall(BaseModel):
    model_config = _OPEN
    name: str | None = None
    arguments: str | None = None


class ChunkToolCall(BaseModel):
    model_config = _OPEN
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: ChunkFunctionCall | None = None


class Delta(BaseModel):
    model_config = _OPEN
    role: Literal["assistant"] | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ChunkToolCall] | None = None


class ChunkChoice(BaseModel):
    model_config = _OPEN
    index: int
    delta: Delta
    finish_reason: FinishReason | None = None
    logprobs: dict[str, Any] | None = None


class ChatCompletionChunk(BaseModel):
    """One `data:` event of a streamed response; the stream ends with `data: [DONE]`."""

    model_config = _OPEN
    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None
