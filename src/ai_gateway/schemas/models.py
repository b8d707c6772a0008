"""The model list (GET /ai/models): OpenAI's shape plus what the gateway knows of each model."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class Pricing(BaseModel):
    """USD per 1M tokens, as decimal strings (exact)."""

    model_config = ConfigDict(extra="forbid")
    input: str | None = None
    output: str | None = None
    cached_input: str | None = None


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    provider: str | None = None
    upstream_model: str | None = None
    mode: str | None = None
    context_window: int | None = None
    max_output_tokens: int | None = None
    pricing: Pricing | None = None
    capabilities: list[str] | None = None


class ModelList(BaseModel):
    model_config = ConfigDict(extra="forbid")
    object: Literal["list"]
    data: list[ModelCard]
