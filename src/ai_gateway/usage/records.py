"""What the gateway records about each request and each piece of feedback.

A `UsageRecord` is built when a request ends (a stream: when it ends) and handed to the
background writer; nothing in it is a secret (no keys, no prompt or completion text).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

Route = Literal["chat", "embeddings"]
# What the response cache did for a request:
#   off           no response cache for this request (none configured, or off for its model)
#   miss          looked up, not found; the answer was stored
#   hit           served from the cache (an exact match), no upstream call
#   semantic-hit  served from the cache (a similar prompt), no upstream call
#   bypass        the cache was skipped: its backend was down, or the request is not cacheable
#   refresh       no lookup (the client sent `Cache-Control: no-cache`); the answer was stored
CacheStatus = Literal["off", "miss", "hit", "semantic-hit", "bypass", "refresh"]
CACHE_HITS: tuple[CacheStatus, ...] = ("hit", "semantic-hit")
# The requests a hit rate is out of: those the cache answered or could have answered.
CACHE_LOOKUPS: tuple[CacheStatus, ...] = ("miss", "hit", "semantic-hit", "refresh")


@dataclass(slots=True)
class UsageRecord:
    """Treat as immutable once built. Not `frozen`: a frozen dataclass of 31 fields costs four
    times as much to build (every field through object.__setattr__), once per request."""

    request_id: str  # the gateway's own id (x-gateway-request-id), unique
    created_at: datetime  # UTC, when the request started
    route: Route
    model: str  # the public model name the client asked for
    served_model: str  # the model name that served it (differs after a fallback); "" if none
    provider: str  # "" when no deployment was reached
    deployment: str  # "<name>/<position>", or "" when none
    upstream_model: str
    stream: bool
    status: int  # the HTTP status the client got (200 for a stream that failed mid-way)
    error_type: str | None  # the OpenAI-style error type, when the request failed
    error_code: str | None
    prompt_tokens: int  # as the provider reported them (cached tokens included)
    completion_tokens: int  # reasoning tokens included
    cached_tokens: int  # prompt tokens read from the provider's cache
    cache_write_tokens: int  # prompt tokens written to the provider's cache (Anthropic)
    reasoning_tokens: int
    cost_usd: Decimal | None  # None when the registry has no price for the model
    latency_ms: float
    ttft_ms: float | None  # streams only
    attempts: int
    fallbacks: int
    cache_status: CacheStatus = "off"
    # On a hit: the prompt + completion tokens of the cached answer that was served instead of
    # calling the provider, and what that answer cost when it was generated (None: unpriced).
    saved_tokens: int = 0
    saved_cost_usd: Decimal | None = None
    user: str | None = None  # filled in once keys/JWTs exist (the `user` field is not trusted)
    key_id: str | None = None
    team: str | None = None
    template: str | None = None
    client_request_id: str | None = None  # the client's x-request-id (it may repeat)
    # True when the provider reported no usage (a stream that ended early) and the tokens are
    # the gateway's count of the prompt and of what was streamed.
    usage_estimated: bool = False
    # The prompt template version the request was rendered from (docs/prompts.md).
    prompt_id: str | None = None
    prompt_version: int | None = None


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    request_id: str
    created_at: datetime  # UTC
    score: float  # normalised to [0, 1]: thumbs up 1 / down 0, a 1-5 rating (n-1)/4, a float as is
    raw_score: str  # what the client sent, for the record ("up", "4", "0.7")
    comment: str | None
    tags: tuple[str, ...]
