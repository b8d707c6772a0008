"""The cost of one request, in exact decimal dollars, from the model registry's prices.

Prices are USD per 1M tokens. Prompt tokens are priced in three parts: tokens read from the
provider's cache at `cached_input_price` (else the input price), tokens written to it at
`cache_write_price` (Anthropic; else the input price), and the rest at `input_price`. Completion
tokens (reasoning included) at `output_price`. A model without input or output prices has no cost
(None), never a guessed one.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ai_gateway.model_registry import ModelInfo

MILLION = Decimal(1_000_000)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def token_counts(usage: object) -> tuple[int, int, int, int, int]:
    """(prompt, completion, cached, cache_write, reasoning) from an OpenAI-style usage object,
    including the fields the Anthropic and Gemini adapters add."""
    if not isinstance(usage, dict):
        return 0, 0, 0, 0, 0
    prompt = _int(usage.get("prompt_tokens"))
    completion = _int(usage.get("completion_tokens"))
    prompt_details: Any = usage.get("prompt_tokens_details") or {}
    completion_details: Any = usage.get("completion_tokens_details") or {}
    cached = _int(prompt_details.get("cached_tokens")) if isinstance(prompt_details, dict) else 0
    cached = cached or _int(usage.get("cache_read_input_tokens"))
    cache_write = _int(usage.get("cache_creation_input_tokens"))
    reasoning = (
        _int(completion_details.get("reasoning_tokens"))
        if isinstance(completion_details, dict)
        else 0
    )
    return prompt, completion, min(cached, prompt), min(cache_write, prompt), reasoning


def cost_usd(info: ModelInfo | None, usage: object) -> Decimal | None:
    if info is None or info.input_price is None or info.output_price is None:
        return None
    prompt, completion, cached, cache_write, _ = token_counts(usage)
    plain = max(0, prompt - cached - cache_write)
    cached_price = (
        info.cached_input_price if info.cached_input_price is not None else info.input_price
    )
    write_price = info.cache_write_price if info.cache_write_price is not None else info.input_price
    total = (
        plain * info.input_price
        + cached * cached_price
        + cache_write * write_price
        + completion * info.output_price
    )
    return total / MILLION
