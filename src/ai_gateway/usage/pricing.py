"""The cost of one request, in exact decimal dollars, from the model registry's prices.

Prices are USD per 1M tokens. Prompt tokens are priced in three parts: tokens read from the
provider's cache at `cached_input_price` (else the input price), tokens written to it at
`cache_write_price` (Anthropic; else the input price), and the rest at `input_price`. Completion
tokens (reasoning included) at `output_price`. A model without input or output prices has no cost
(None), never a guessed one; an embedding model needs only its input price.
"""

from __future__ import annotations

from decimal import Decimal

from ai_gateway.model_registry import ModelInfo

MILLION = Decimal(1_000_000)


Counts = tuple[int, int, int, int, int]
NO_TOKENS: Counts = (0, 0, 0, 0, 0)


def _count(value: object) -> int:
    # `type is int`: not a bool, not a float; a negative count is no count
    return value if type(value) is int and value > 0 else 0


def token_counts(usage: object) -> Counts:
    """(prompt, completion, cached, cache_write, reasoning) from an OpenAI-style usage object,
    including the fields the Anthropic and Gemini adapters add."""
    if not isinstance(usage, dict):
        return NO_TOKENS
    get = usage.get
    prompt = _count(get("prompt_tokens"))
    completion = _count(get("completion_tokens"))
    prompt_details = get("prompt_tokens_details")
    cached = _count(prompt_details.get("cached_tokens")) if isinstance(prompt_details, dict) else 0
    cached = cached or _count(get("cache_read_input_tokens"))
    cache_write = _count(get("cache_creation_input_tokens"))
    completion_details = get("completion_tokens_details")
    reasoning = (
        _count(completion_details.get("reasoning_tokens"))
        if isinstance(completion_details, dict)
        else 0
    )
    return prompt, completion, min(cached, prompt), min(cache_write, prompt), reasoning


def priced(info: ModelInfo | None) -> bool:
    """Whether `info` has the prices a cost needs: input and output (an embedding model
    generates no output: its input price is enough)."""
    return (
        info is not None
        and info.input_price is not None
        and (info.output_price is not None or info.mode == "embedding")
    )


def cost_of(info: ModelInfo | None, counts: Counts) -> Decimal | None:
    """The cost of `counts` (from `token_counts`) at `info`'s prices."""
    if info is None or not priced(info):
        return None
    assert info.input_price is not None
    prompt, completion, cached, cache_write, _ = counts
    plain = max(0, prompt - cached - cache_write)  # each is at most `prompt`, not their sum
    total = plain * info.input_price + completion * (info.output_price or 0)
    if cached:
        price = info.cached_input_price
        total += cached * (price if price is not None else info.input_price)
    if cache_write:
        price = info.cache_write_price
        total += cache_write * (price if price is not None else info.input_price)
    return total / MILLION
