"""OpenAI's attribute filters, as a search request sends them: a comparison
(`{"type": "eq", "key": "author", "value": "jane"}`; `eq ne gt gte lt lte in nin`) or a compound
of filters (`{"type": "and" | "or", "filters": [...]}`), nested to any depth. Plain models that
validate the request; each index backend translates them into its own filter."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Scalar = str | float | bool
Comparison = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"]


class ComparisonFilter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Comparison
    key: str = Field(min_length=1, max_length=64)
    value: Scalar | list[Scalar]


class CompoundFilter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["and", "or"]
    filters: list[ComparisonFilter | CompoundFilter] = Field(min_length=1, max_length=64)


AttributeFilter = ComparisonFilter | CompoundFilter
