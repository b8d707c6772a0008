"""The bodies of the vector-store requests, as OpenAI's API reference defines them, validated.
Field errors become 400s that name the field (schemas/validation.py)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ai_gateway.rag.filters import AttributeFilter
from ai_gateway.rag.records import AttributeValue

MAX_ATTRIBUTES = 16
MAX_METADATA = 16


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_attributes(value: dict[str, AttributeValue] | None) -> dict[str, AttributeValue] | None:
    if value is None:
        return None
    if len(value) > MAX_ATTRIBUTES:
        raise ValueError(f"at most {MAX_ATTRIBUTES} attributes")
    for key, item in value.items():
        if not 1 <= len(key) <= 64:
            raise ValueError("attribute keys are 1 to 64 characters")
        if isinstance(item, str) and len(item) > 512:
            raise ValueError(f"attribute {key!r}: a string value is at most 512 characters")
    return value


def _check_metadata(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    if len(value) > MAX_METADATA:
        raise ValueError(f"at most {MAX_METADATA} metadata keys")
    for key, item in value.items():
        if not 1 <= len(key) <= 64 or len(item) > 512:
            raise ValueError("metadata keys are 1 to 64 characters, values at most 512")
    return value


class ExpiresAfter(_Body):
    anchor: Literal["last_active_at"]
    days: int = Field(ge=1, le=365)


class VectorStoreCreate(_Body):
    name: str | None = Field(default=None, max_length=256)
    description: str | None = Field(default=None, max_length=512)
    file_ids: list[str] = Field(default_factory=list, max_length=500)
    chunking_strategy: dict[str, Any] | None = None
    expires_after: ExpiresAfter | None = None
    metadata: dict[str, str] | None = None

    _metadata = field_validator("metadata")(_check_metadata)


class VectorStoreUpdate(_Body):
    name: str | None = Field(default=None, max_length=256)
    expires_after: ExpiresAfter | None = None
    metadata: dict[str, str] | None = None

    _metadata = field_validator("metadata")(_check_metadata)


class StoreFileCreate(_Body):
    file_id: str = Field(min_length=1)
    attributes: dict[str, AttributeValue] | None = None
    chunking_strategy: dict[str, Any] | None = None

    _attributes = field_validator("attributes")(_check_attributes)


class StoreFileUpdate(_Body):
    attributes: dict[str, AttributeValue]

    _attributes = field_validator("attributes")(_check_attributes)


class BatchFile(_Body):
    file_id: str = Field(min_length=1)
    attributes: dict[str, AttributeValue] | None = None
    chunking_strategy: dict[str, Any] | None = None

    _attributes = field_validator("attributes")(_check_attributes)


class BatchCreate(_Body):
    """`file_ids` (with the batch's attributes and chunking) or `files` (each its own)."""

    file_ids: list[str] | None = Field(default=None, min_length=1, max_length=500)
    files: list[BatchFile] | None = Field(default=None, min_length=1, max_length=500)
    attributes: dict[str, AttributeValue] | None = None
    chunking_strategy: dict[str, Any] | None = None

    _attributes = field_validator("attributes")(_check_attributes)


class RankingOptions(_Body):
    ranker: Literal["none", "auto", "default-2024-11-15"] = "auto"
    score_threshold: float = Field(default=0.0, ge=0, le=1)


class SearchBody(_Body):
    query: str | list[str]
    filters: AttributeFilter | None = None
    max_num_results: int = Field(default=10, ge=1, le=50)
    ranking_options: RankingOptions | None = None
    rewrite_query: bool = False

    @field_validator("query")
    @classmethod
    def _some_text(cls, value: str | list[str]) -> str | list[str]:
        texts = [value] if isinstance(value, str) else value
        if not texts or len(texts) > 10:
            raise ValueError("give a query string, or a list of 1 to 10 of them")
        if any(not text.strip() or len(text) > 4096 for text in texts):
            raise ValueError("each query is 1 to 4096 characters, not only spaces")
        return value
