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
CacheStatus = Literal["off", "miss", "hit"]


@dataclass(slots=True)
class UsageRecord:
    """Treat as immutable once built. Not `frozen`: a frozen dataclass of 27 fields costs four
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
    user: str | None = None  # filled in once keys/JWTs exist (the `user` field is not trusted)
    key_id: str | None = None
    team: str | None = None
    template: str | None = None
    client_request_id: str | None = None  # the client's x-request-id (it may repeat)
    # True when the provider reported no usage (a stream that ended early) and the tokens are
    # the gateway's count of the prompt and of what was streamed.
    usage_estimated: bool = False


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    request_id: str
    created_at: datetime  # UTC
    score: float  # normalised to [0, 1]: thumbs up 1 / down 0, a 1-5 rating (n-1)/4, a float as is
    raw_score: str  # what the client sent, for the record ("up", "4", "0.7")
    comment: str | None
    tags: tuple[str, ...]
