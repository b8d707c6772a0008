"""POST /ai/tokens/count: how many tokens a prompt or texts take for a model."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ai_gateway.schemas.chat import Message, Tool
from ai_gateway.schemas.validation import ModelName


class TokenCountRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    model: ModelName
    messages: list[Message] | None = Field(default=None, min_length=1)
    tools: list[Tool] | None = None
    input: str | list[str] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> TokenCountRequest:
        if (self.messages is None) == (self.input is None):
            raise ValueError("send either 'messages' (a chat prompt) or 'input' (text), not both")
        if self.tools is not None and self.messages is None:
            raise ValueError("'tools' counts only together with 'messages'")
        return self


class TokenCountResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    object: Literal["token_count"]
    model: str
    provider: str
    upstream_model: str
    tokens: int
    exact: bool
    method: str
