"""Which failures are worth another attempt, and how long to wait before it."""

from __future__ import annotations

import random

from ai_gateway.errors import (
    ContentFilteredError,
    GatewayError,
    UpstreamBadRequestError,
    UpstreamError,
    UpstreamNotFoundError,
    UpstreamPayloadTooLargeError,
)

# The upstream judged the client's request itself: another attempt would get the same answer.
_CLIENT_CAUSED = (
    UpstreamBadRequestError,
    UpstreamNotFoundError,
    UpstreamPayloadTooLargeError,
    ContentFilteredError,
)


def is_retryable(exc: GatewayError) -> bool:
    """Connection errors, timeouts, 429, 5xx, protocol errors and rejected credentials (another
    deployment may hold other credentials) are retried; errors the client caused are not."""
    return isinstance(exc, UpstreamError) and not isinstance(exc, _CLIENT_CAUSED)


def is_context_overflow(exc: GatewayError) -> bool:
    """The upstream says the prompt does not fit the model's window."""
    text = f"{exc.code or ''} {exc.message}".lower()
    return isinstance(exc, UpstreamBadRequestError) and (
        "context_length_exceeded" in text
        or "context window" in text
        or "prompt is too long" in text
        or "maximum context length" in text
    )


def retry_after_of(exc: GatewayError) -> float | None:
    value = exc.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def backoff_s(
    attempt: int, *, base_s: float, max_s: float, rng: random.Random, retry_after_s: float | None
) -> float:
    """Exponential backoff with full jitter (uniform in [0, min(max, base * 2^attempt)]), never
    shorter than the upstream's Retry-After."""
    delay = rng.uniform(0.0, min(max_s, base_s * (2**attempt)))
    return max(delay, retry_after_s) if retry_after_s is not None else delay
