"""The Chat Completions request, as clients send it.

Strict where a wrong type would be forwarded upstream and fail there; open (`extra="allow"`) so
that fields this gateway does not know yet still reach OpenAI-compatible upstreams unchanged.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails

from ai_gateway.routing.config import ContextStrategy
from ai_gateway.schemas.validation import ModelName

_OPEN = ConfigDict(extra="allow", strict=True)

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class ImageURL(BaseModel):
    model_config = _OPEN
    url: str = Field(min_length=1)
    detail: Literal["auto", "low", "high"] | None = None


class ContentPart(BaseModel):
    """One part of multi-part content: text, image_url, input_audio, file, refusal, ..."""

    model_config = _OPEN
    type: str = Field(min_length=1)
    text: str | None = None
    image_url: ImageURL | None = None
    refusal: str | None = None

    @model_validator(mode="after")
    def _required_by_type(self) -> ContentPart:
        if self.type == "text" and self.text is None:
            raise ValueError("a 'text' content part needs a 'text' string")
        if self.type == "image_url" and self.image_url is None:
            raise ValueError("an 'image_url' content part needs 'image_url': {'url': ...}")
        if self.type == "refusal" and self.refusal is None:
            raise ValueError("a 'refusal' content part needs a 'refusal' string")
        return self


class FunctionCall(BaseModel):
    model_config = _OPEN
    name: str
    arguments: str


class ToolCall(BaseModel):
    model_config = _OPEN
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(BaseModel):
    model_config = _OPEN
    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _required_by_role(self) -> Message:
        if self.role in ("system", "developer", "user") and self.content is None:
            raise ValueError(f"a '{self.role}' message needs 'content'")
        if self.role == "tool":
            if self.tool_call_id is None:
                raise ValueError("a 'tool' message needs 'tool_call_id'")
            if self.content is None:
                raise ValueError("a 'tool' message needs 'content'")
        if self.role == "assistant" and self.content is None and not self.tool_calls:
            extra = self.model_extra or {}
            if not extra.get("function_call") and not extra.get("refusal"):
                raise ValueError("an 'assistant' message needs 'content' or 'tool_calls'")
        return self


class FunctionDefinition(BaseModel):
    model_config = _OPEN
    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(BaseModel):
    model_config = _OPEN
    type: str = "function"
    function: FunctionDefinition | None = None

    @model_validator(mode="after")
    def _function_needed(self) -> Tool:
        if self.type == "function" and self.function is None:
            raise ValueError("a 'function' tool needs 'function': {'name': ...}")
        return self


class NamedFunction(BaseModel):
    model_config = _OPEN
    name: str


class NamedToolChoice(BaseModel):
    model_config = _OPEN
    type: Literal["function"]
    function: NamedFunction


class JSONSchemaFormat(BaseModel):
    model_config = _OPEN
    name: str = Field(min_length=1)
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    model_config = _OPEN
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_needed(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("response_format of type 'json_schema' needs 'json_schema'")
        return self


class StreamOptions(BaseModel):
    model_config = _OPEN
    include_usage: bool | None = None


class CacheOptions(BaseModel):
    """The request's response-cache controls (docs/caching.md)."""

    model_config = ConfigDict(extra="forbid")

    ttl: int | None = Field(default=None, ge=1)  # seconds an answer stored now is kept
    no_cache: bool = False  # skip the lookup (the answer is still stored)
    no_store: bool = False  # do not store the answer
    namespace: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._:-]{1,64}$")


class ContextOptions(BaseModel):
    """The context the request asks the gateway to build from the DevMentor services
    (docs/integrations.md): the user's relevant memories, a project's context, the learner's
    profile; `store`: give the finished exchange to the Memory service."""

    model_config = ConfigDict(extra="forbid")

    memory: bool = False
    project_id: str | None = Field(default=None, min_length=1, max_length=256)
    learning: bool = False
    store: bool = False


class RagOptions(BaseModel):
    """Retrieval from the gateway's vector stores (docs/rag.md): the best passages of those
    stores for the last user message go into the prompt; `citations`: the answer's body lists
    the files they came from (the `x-gateway-citations` header always does). `filters`: on file
    attributes, as the vector-store search takes them; `query`: what to search for (default:
    the last user message)."""

    model_config = ConfigDict(extra="forbid")

    vector_store_ids: list[str] = Field(min_length=1, max_length=10)
    query: str | None = Field(default=None, min_length=1, max_length=4096)
    max_num_results: int | None = Field(default=None, ge=1, le=50)
    score_threshold: float | None = Field(default=None, ge=0, le=1)
    filters: dict[str, Any] | None = None
    citations: bool = False


class ChunkingOptions(BaseModel):
    """How a stream's text is regrouped for display (docs/api.md, "Response chunking"): `raw`,
    as it comes; `line` or `sentence`, whole lines or sentences, none held back longer than
    `max_delay_ms`."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["raw", "line", "sentence"] = "raw"
    max_delay_ms: int = Field(default=250, ge=0, le=10_000)


class PromptReference(BaseModel):
    """The request's prompt template (docs/prompts.md): its messages come first, its model and
    parameters apply unless the request sets them."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    version: int | None = Field(default=None, ge=1, le=2**31 - 1)
    label: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    variables: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one(self) -> PromptReference:
        if self.version is not None and self.label is not None:
            raise ValueError("send 'version' or 'label', not both")
        return self


GATEWAY_FIELDS = ("context_strategy", "models", "fanout", "cache", "prompt", "context", "rag")


class ChatCompletionRequest(BaseModel):
    """POST /ai/chat/completions (and /v1/chat/completions)."""

    # `model` and `messages` are required unless the request names a prompt template.
    model_config = ConfigDict(
        extra="allow",
        strict=True,
        json_schema_extra={
            "if": {"not": {"required": ["prompt"]}},
            "then": {
                "required": ["model", "messages"],
                "properties": {"messages": {"minItems": 1}},
            },
        },
    )

    # Both required, unless a prompt template supplies them (`prompt`).
    model: ModelName | None = None
    messages: list[Message] = Field(default_factory=list)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: int | None = Field(default=None, ge=1, le=128)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    seed: int | None = None
    user: str | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    # Gateway extensions (removed before the request goes upstream).
    context_strategy: ContextStrategy | None = None
    models: list[ModelName] | None = Field(default=None, min_length=1, max_length=8)
    fanout: Literal["first", "all"] | None = None
    cache: CacheOptions | None = None
    context: ContextOptions | None = None
    prompt: PromptReference | None = None
    rag: RagOptions | None = None
    chunking: ChunkingOptions | None = None

    @model_validator(mode="before")
    @classmethod
    def _required(cls, data: Any) -> Any:
        """`model` and `messages` (at least one) are required without a prompt template."""
        if not isinstance(data, dict) or data.get("prompt") is not None:
            return data
        errors = [
            InitErrorDetails(type="missing", loc=(name,), input=data)
            for name in ("model", "messages")
            if name not in data
        ]
        if data.get("messages") == []:
            context = {"field_type": "List", "min_length": 1, "actual_length": 0}
            short = InitErrorDetails(type="too_short", loc=("messages",), input=[], ctx=context)
            errors.append(short)
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return data

    @model_validator(mode="after")
    def _fanout(self) -> ChatCompletionRequest:
        if self.fanout is not None and not self.models:
            raise ValueError("'fanout' needs 'models': the list of model names to send to")
        if self.models and self.fanout == "all" and self.stream:
            raise ValueError("fanout 'all' returns every model's answer at once: it cannot stream")
        return self
