"""The Embeddings request and response."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ai_gateway.schemas.chat_response import Usage
from ai_gateway.schemas.validation import ModelName

EmbeddingInput = str | list[str] | list[int] | list[list[int]]


class EmbeddingsRequest(BaseModel):
    """POST /ai/embeddings (and /v1/embeddings)."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: ModelName
    input: EmbeddingInput
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: EmbeddingInput) -> EmbeddingInput:
        if isinstance(value, list):
            if not value:
                raise ValueError("'input' must not be an empty list")
            if len(value) > 2048:
                raise ValueError("'input' may hold at most 2048 items")
            if any(isinstance(item, list) and not item for item in value):
                raise ValueError("'input' must not contain an empty token list")
        return value


class Embedding(BaseModel):
    model_config = ConfigDict(extra="allow")
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    model_config = ConfigDict(extra="allow")
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    model_config = ConfigDict(extra="allow")
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage | None = None


__all__ = ["Embedding", "EmbeddingsRequest", "EmbeddingsResponse", "Usage"]
