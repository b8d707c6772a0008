"""POST /ai/feedback's request (validated here) and the analytics API's responses (for OpenAPI).

A feedback score is one of three scales, normalised to [0, 1] as `FeedbackRecord` documents:

- thumbs: `"up"` / `"down"` or `true` / `false` -> 1.0 / 0.0
- a rating: a JSON integer 1-5 -> (n - 1) / 4 (so 1 -> 0.0, 3 -> 0.5, 5 -> 1.0)
- a fraction: a JSON number with a decimal point, 0.0-1.0 -> itself

The JSON type decides the scale: `1` is the lowest rating, `1.0` the best fraction.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)

from ai_gateway.usage.records import CacheStatus

MAX_COMMENT_CHARS = 4000
MAX_TAGS = 20
MAX_TAG_CHARS = 64
REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")  # what the gateway accepts as x-request-id

_THUMBS = {"up": 1.0, "down": 0.0}
_SCORE_SCHEMA: dict[str, Any] = {
    "description": 'Thumbs ("up"/"down" or true/false), an integer rating 1-5, or a number '
    "0.0-1.0 (written with a decimal point); stored normalised to [0, 1] with the raw value.",
    "anyOf": [
        {"type": "string", "enum": ["up", "down"]},
        {"type": "boolean"},
        {"type": "integer", "minimum": 1, "maximum": 5},
        {"type": "number", "minimum": 0, "maximum": 1},
    ],
}


def normalise_score(value: object) -> tuple[float, str]:
    """(score in [0, 1], the raw value as text); ValueError with a message a person can act on."""
    if isinstance(value, bool):
        return (1.0 if value else 0.0), ("true" if value else "false")
    if isinstance(value, str):
        thumb = _THUMBS.get(value.strip().lower())
        if thumb is None:
            raise ValueError(
                f'a text score must be "up" or "down" (got {value[:20]!r}); '
                "send a rating 1-5 or a fraction 0.0-1.0 as a JSON number"
            )
        return thumb, value.strip().lower()
    if isinstance(value, int):
        if not 1 <= value <= 5:
            raise ValueError(
                f"an integer score is a rating from 1 to 5 (got {value}); "
                "for a fraction send a number with a decimal point, e.g. 0.0 or 1.0"
            )
        return (value - 1) / 4, str(value)
    if isinstance(value, float):
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise ValueError(f"a fractional score must be between 0.0 and 1.0 (got {value})")
        return value, repr(value)
    raise ValueError(
        'score must be "up"/"down", true/false, an integer rating 1-5 or a number 0.0-1.0'
    )


Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    request_id: str = Field(
        description="The x-request-id of the gateway response the feedback is about."
    )
    score: Annotated[Any, WithJsonSchema(_SCORE_SCHEMA)]
    comment: str | None = Field(default=None, max_length=MAX_COMMENT_CHARS)
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)

    @field_validator("request_id")
    @classmethod
    def _request_id(cls, value: str) -> str:
        if not REQUEST_ID.fullmatch(value):
            raise ValueError(
                "a request id is 1-128 letters, digits or . _ : - (copy it from the "
                "x-request-id response header)"
            )
        return value

    @field_validator("score")
    @classmethod
    def _score(cls, value: object) -> object:
        normalise_score(value)
        return value

    @field_validator("tags")
    @classmethod
    def _unique_tags(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class Feedback(BaseModel):
    """The stored feedback record (201 response)."""

    model_config = ConfigDict(extra="forbid")

    object: Literal["feedback"]
    request_id: str
    created_at: str = Field(description="ISO-8601, UTC")
    score: float = Field(ge=0, le=1, description="Normalised to [0, 1]")
    raw_score: str = Field(description='What the client sent, as text ("up", "4", "0.7")')
    comment: str | None
    tags: list[str]


# --- analytics responses -------------------------------------------------------------------------
# Rows come from the analytics store; their fields are described here for OpenAPI (a backend may
# add more, so rows allow extra fields). Costs are USD as decimal strings (exact), null when the
# model has no price in the registry.

Cost = Annotated[str | None, Field(description="USD as a decimal string (exact)")]
CacheHits = Annotated[
    int, Field(description="Requests served from the response cache (hit or semantic-hit)")
]
CacheLookups = Annotated[
    int,
    Field(
        description="Requests the response cache answered or could have answered (status "
        "miss, hit, semantic-hit or refresh): what the hit rate is out of"
    ),
]
CacheHitRate = Annotated[
    float | None,
    Field(ge=0, le=1, description="cache_hits / cache_lookups; null when there were no lookups"),
]
SavedTokens = Annotated[
    int,
    Field(
        description="Prompt + completion tokens of the cached answers served instead of "
        "calling the provider"
    ),
]
SavedCost = Annotated[
    str | None,
    Field(
        description="USD as a decimal string (exact): what the cached answers served cost "
        "when they were generated; null when none of them had a price"
    ),
]


class _Row(BaseModel):
    model_config = ConfigDict(extra="allow")


class UsageRow(_Row):
    group: str | None = Field(
        description="The group's key (a model, provider, user, key id, deployment or UTC day "
        "YYYY-MM-DD); null for requests without one"
    )
    requests: int
    errors: int = Field(description="Requests that failed (status >= 400 or an error type)")
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd: Cost
    unpriced_requests: int = Field(description="Requests whose model has no price (cost unknown)")
    cache_hits: CacheHits
    cache_lookups: CacheLookups
    cache_hit_rate: CacheHitRate
    saved_tokens: SavedTokens
    saved_cost_usd: SavedCost


class UsageTotals(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    total_tokens: int = Field(description="prompt_tokens + completion_tokens")
    cost_usd: str = Field(description="USD as a decimal string, exact; unpriced requests add 0")
    unpriced_requests: int
    cache_hits: CacheHits
    cache_lookups: CacheLookups
    cache_hit_rate: CacheHitRate
    saved_tokens: SavedTokens
    saved_cost_usd: str = Field(
        description="USD as a decimal string, exact; cached answers without a price add 0"
    )


class _Report(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: str = Field(description="ISO-8601, UTC, inclusive")
    end: str = Field(description="ISO-8601, UTC, exclusive")
    complete: bool = Field(
        description="False when this gateway's writer could not flush before the query (the "
        "store is slow or down): the latest requests may be missing"
    )


class UsageReport(_Report):
    object: Literal["analytics.usage"]
    group_by: Literal["model", "provider", "user", "key", "team", "day", "deployment"]
    data: list[UsageRow]
    totals: UsageTotals


class ModelRow(_Row):
    model: str = Field(description="The model name that served the requests ('' when none did)")
    deployment: str
    provider: str
    requests: int
    errors: int
    error_rate: float = Field(ge=0, le=1)
    p50_latency_ms: float | None
    p95_latency_ms: float | None
    p50_ttft_ms: float | None = Field(description="Time to first token (streams only)")
    p95_ttft_ms: float | None
    cost_usd: Cost
    cost_per_1k_requests: Cost


class ModelsReport(_Report):
    object: Literal["analytics.models"]
    data: list[ModelRow]


class ErrorRow(_Row):
    request_id: str
    created_at: str
    model: str
    provider: str
    status: int
    error_type: str | None
    error_code: str | None


class ErrorCount(BaseModel):
    model_config = ConfigDict(extra="forbid")

    error_type: str | None
    count: int


class ErrorsReport(_Report):
    object: Literal["analytics.errors"]
    limit: int
    data: list[ErrorRow] = Field(description="The most recent failed requests, newest first")
    by_type: list[ErrorCount] = Field(description="All failed requests in the range, by type")
    total: int = Field(description="All failed requests in the range")


class RequestRow(_Row):
    request_id: str = Field(description="The gateway's own id (x-gateway-request-id), unique")
    client_request_id: str | None = Field(
        description="The x-request-id the client sent (it may repeat), or null"
    )
    created_at: str
    route: Literal["chat", "embeddings"]
    model: str = Field(description="The model name the client asked for")
    served_model: str
    provider: str
    deployment: str
    stream: bool
    status: int
    error_type: str | None
    error_code: str | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Cost
    usage_estimated: bool = Field(
        description="True when the provider reported no usage (a stream that ended early) "
        "and the tokens are the gateway's count of the prompt and of the streamed text"
    )
    latency_ms: float | None
    user: str | None
    key_id: str | None
    team: str | None
    cache_status: CacheStatus = Field(
        description="What the response cache did: off (no cache), miss (looked up, answer "
        "stored), hit / semantic-hit (served from the cache, no upstream call), bypass (the "
        "cache was skipped), refresh (the client's no-cache: no lookup, answer stored)"
    )
    saved_tokens: SavedTokens
    saved_cost_usd: SavedCost
    prompt_id: str | None = Field(
        default=None, description="The prompt template the request was rendered from, or null"
    )
    prompt_version: int | None = Field(default=None, description="That template's version")


class RequestsReport(_Report):
    object: Literal["analytics.requests"]
    limit: int
    request_id: str | None = Field(default=None, description="The gateway's id searched for")
    client_request_id: str | None = Field(default=None, description="The client's id searched for")
    data: list[RequestRow] = Field(description="The matching requests, newest first")


class FeedbackRow(_Row):
    group: str | None = Field(description="The model, template or UTC day; null when unknown")
    count: int
    mean_score: float | None
    positive: int = Field(description="Scores above 0.5")
    negative: int = Field(description="Scores below 0.5 (0.5 is neutral)")


class FeedbackTotals(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int
    mean_score: float | None
    positive: int
    negative: int


class FeedbackReport(_Report):
    object: Literal["analytics.feedback"]
    group_by: Literal["model", "template", "day"]
    data: list[FeedbackRow]
    totals: FeedbackTotals


class PromptVersionRow(_Row):
    prompt_id: str = Field(description="The prompt template the requests were rendered from")
    prompt_version: int = Field(description="Its version")
    requests: int
    errors: int = Field(description="Requests that failed (status >= 400 or an error type)")
    error_rate: float = Field(ge=0, le=1, description="errors / requests")
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int = Field(description="prompt_tokens + completion_tokens")
    cost_usd: Cost
    unpriced_requests: int = Field(description="Requests whose model has no price (cost unknown)")
    mean_latency_ms: float | None
    p50_latency_ms: float | None
    p95_latency_ms: float | None
    feedback_count: int = Field(description="Feedback rows on these requests (POST /ai/feedback)")
    mean_score: float | None = Field(
        ge=0, le=1, description="Their mean normalised score; null without feedback"
    )


class PromptsReport(_Report):
    object: Literal["analytics.prompts"]
    prompt_id: str | None = Field(description="The template asked for; null for all of them")
    data: list[PromptVersionRow] = Field(
        description="One row per template version with requests in the range, by id and version"
    )


class TimeseriesRow(_Row):
    bucket: str = Field(description="The bucket's start, ISO-8601, UTC")
    model: str
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Cost
    p50_latency_ms: float | None
    p95_latency_ms: float | None
    cache_hits: CacheHits
    cache_lookups: CacheLookups
    cache_hit_rate: CacheHitRate
    saved_tokens: SavedTokens
    saved_cost_usd: SavedCost


class TimeseriesReport(_Report):
    object: Literal["analytics.timeseries"]
    bucket_s: int = Field(description="The bucket width in seconds; buckets align to the epoch")
    data: list[TimeseriesRow]


ANALYTICS_SCHEMAS: list[type[BaseModel]] = [
    FeedbackRequest,
    Feedback,
    UsageReport,
    ModelsReport,
    ErrorsReport,
    RequestsReport,
    FeedbackReport,
    PromptsReport,
    TimeseriesReport,
]
