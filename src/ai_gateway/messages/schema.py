"""The Messages API request (`POST /v1/messages`) and the token count request
(`POST /v1/messages/count_tokens`), as Anthropic's API reference describes them.

Validated where a wrong type would only fail later (required fields, roles, the shapes of
`system`, `tool_choice`, `metadata`, the sampling ranges), and open (`extra="allow"`) elsewhere:
content blocks and tools are checked by their `type` when the request is put into the gateway's
view (`messages/request.py`), and fields this gateway does not know yet are kept, so that they
reach Anthropic deployments unchanged.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ai_gateway.schemas.validation import ModelName

_OPEN = ConfigDict(extra="allow", strict=True)


class Block(BaseModel):
    """A content block: `text`, `image`, `document`, `tool_use`, `tool_result`, `thinking`,
    `redacted_thinking`, ... (its fields are checked by type in messages/request.py)."""

    model_config = _OPEN
    type: str = Field(min_length=1)


class TextBlock(BaseModel):
    model_config = _OPEN
    type: Literal["text"]
    text: str


class InputMessage(BaseModel):
    model_config = _OPEN
    role: Literal["user", "assistant"]
    content: str | list[Block]


class Metadata(BaseModel):
    model_config = _OPEN
    user_id: str | None = Field(default=None, max_length=256)


class ToolDefinition(BaseModel):
    """A client tool (`input_schema`), or a server tool named by its `type`."""

    model_config = _OPEN
    name: str = Field(min_length=1, max_length=128)
    type: str | None = None
    description: str | None = None
    input_schema: dict[str, Any] | None = None


class ToolChoice(BaseModel):
    model_config = _OPEN
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class Thinking(BaseModel):
    model_config = _OPEN
    type: str = Field(min_length=1)  # enabled, disabled, adaptive, ...
    budget_tokens: int | None = Field(default=None, ge=0)


class CountTokensRequest(BaseModel):
    """POST /v1/messages/count_tokens: what the prompt would be, without `max_tokens`."""

    model_config = _OPEN
    model: ModelName
    messages: list[InputMessage] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    tools: list[ToolDefinition] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None


class MessagesRequest(CountTokensRequest):
    """POST /v1/messages (and /ai/messages)."""

    max_tokens: int = Field(ge=1)
    stream: bool | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    stop_sequences: list[str] | None = None
    metadata: Metadata | None = None
