"""The Responses API request (`POST /v1/responses`, and a WebSocket's `response.create`), as
clients send it. The top-level fields are typed here, so that a wrong one is a 400 naming it;
input items and tools are checked one by one where they are translated (responses/items.py,
responses/request.py), which names the item (`input[2].content[0]`).

Fields this gateway does not act on (`service_tier`, `prompt_cache_key`, `stream_options`, ...)
are accepted and echoed where the Response object has them; those it cannot honour are refused
by the translation with a 400 naming them (`background`, `conversation`, tools other than
`function` and `file_search`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails

from ai_gateway.routing.config import ContextStrategy
from ai_gateway.schemas.chat import CacheOptions, ContextOptions, RagOptions
from ai_gateway.schemas.validation import ModelName

_OPEN = ConfigDict(extra="allow", strict=True)


class TextFormat(BaseModel):
    """`text.format`: plain text, any JSON object, or JSON that matches `schema`."""

    model_config = _OPEN
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = Field(default=None, min_length=1, max_length=64)
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    description: str | None = None
    strict: bool | None = None

    @model_validator(mode="after")
    def _schema_needed(self) -> TextFormat:
        if self.type == "json_schema" and (self.name is None or self.schema_ is None):
            raise ValueError("a 'json_schema' format needs 'name' and 'schema'")
        return self


class TextConfig(BaseModel):
    model_config = _OPEN
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class ReasoningConfig(BaseModel):
    model_config = _OPEN
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None
    generate_summary: Literal["auto", "concise", "detailed"] | None = None


class ResponsesPrompt(BaseModel):
    """OpenAI's prompt reference, on the gateway's template store (docs/prompts.md): `version`
    is a version number ("3") or a label ("production"); variables are strings or
    `input_text` parts."""

    model_config = ConfigDict(extra="forbid", strict=True)
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    version: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    variables: dict[str, Any] | None = None


class ResponsesRequest(BaseModel):
    """POST /v1/responses (and /ai/responses)."""

    model_config = _OPEN

    model: ModelName | None = None  # required unless `prompt` names a template
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = Field(default=None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    metadata: dict[str, str] | None = Field(default=None, max_length=16)
    store: bool | None = None
    previous_response_id: str | None = Field(default=None, min_length=1, max_length=128)
    prompt: ResponsesPrompt | None = None
    stream: bool | None = None
    background: bool | None = None
    include: list[str] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    # Gateway extensions (docs/api.md), as on chat completions.
    cache: CacheOptions | None = None
    context: ContextOptions | None = None
    rag: RagOptions | None = None
    context_strategy: ContextStrategy | None = None

    @model_validator(mode="before")
    @classmethod
    def _model_needed(cls, data: Any) -> Any:
        """`model` is required without a prompt template."""
        if isinstance(data, dict) and data.get("prompt") is None and "model" not in data:
            missing = InitErrorDetails(type="missing", loc=("model",), input=data)
            raise ValidationError.from_exception_data(cls.__name__, [missing])
        return data

    @model_validator(mode="after")
    def _metadata(self) -> ResponsesRequest:
        for key, value in (self.metadata or {}).items():
            if len(key) > 64 or len(value) > 512:
                raise ValueError("metadata keys are at most 64 characters, values at most 512")
        return self
