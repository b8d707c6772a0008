"""Token counts from providers' usage objects, and exact decimal costs at the registry's prices."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from ai_gateway.model_registry import ModelInfo
from ai_gateway.usage.pricing import cost_of, token_counts


def model(**prices: str) -> ModelInfo:
    fields: dict[str, Any] = {"id": "m", "provider": "openai", "mode": "chat"}
    fields["context_window"] = 1000
    return ModelInfo(**fields, **{name: Decimal(value) for name, value in prices.items()})


def test_counts_from_openai_anthropic_and_gemini_shaped_usage() -> None:
    openai = {
        "prompt_tokens": 100,
        "completion_tokens": 40,
        "prompt_tokens_details": {"cached_tokens": 30},
        "completion_tokens_details": {"reasoning_tokens": 25},
    }
    assert token_counts(openai) == (100, 40, 30, 0, 25)
    anthropic = {
        "prompt_tokens": 100,
        "completion_tokens": 7,
        "cache_read_input_tokens": 20,
        "cache_creation_input_tokens": 50,
    }
    assert token_counts(anthropic) == (100, 7, 20, 50, 0)


@pytest.mark.parametrize(
    "usage",
    [
        None,
        "12 tokens",
        {},
        {"prompt_tokens": True, "completion_tokens": 2.0},  # not counts
        {"prompt_tokens": -5, "completion_tokens": None},
        {"prompt_tokens_details": [1], "completion_tokens_details": "x"},
    ],
)
def test_anything_that_is_not_a_count_counts_as_zero(usage: object) -> None:
    assert token_counts(usage) == (0, 0, 0, 0, 0)


def test_cached_and_written_tokens_never_exceed_the_prompt() -> None:
    usage = {
        "prompt_tokens": 10,
        "cache_read_input_tokens": 50,
        "cache_creation_input_tokens": 80,
    }
    assert token_counts(usage) == (10, 0, 10, 10, 0)


def test_cost_prices_each_part_of_the_prompt_exactly() -> None:
    info = model(
        input_price="3", output_price="15", cached_input_price="0.3", cache_write_price="3.75"
    )
    usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 200,
        "cache_read_input_tokens": 300,
        "cache_creation_input_tokens": 100,
    }
    # 600 plain x 3 + 300 x 0.3 + 100 x 3.75 + 200 x 15, per million
    assert cost_of(info, token_counts(usage)) == Decimal("0.005265")


def test_cached_tokens_without_their_own_price_cost_the_input_price() -> None:
    info = model(input_price="0.15", output_price="0.6")
    usage = {"prompt_tokens": 9, "completion_tokens": 12, "cache_read_input_tokens": 4}
    assert cost_of(info, token_counts(usage)) == Decimal("0.00000855")  # 9 x 0.15 + 12 x 0.6


def test_overlapping_cache_counts_price_no_token_below_zero() -> None:
    info = model(input_price="1", output_price="1", cached_input_price="0", cache_write_price="0")
    usage = {
        "prompt_tokens": 10,
        "cache_read_input_tokens": 8,
        "cache_creation_input_tokens": 8,
    }
    assert cost_of(info, token_counts(usage)) == Decimal(0)


def test_a_model_without_prices_has_no_cost() -> None:
    usage = {"prompt_tokens": 5, "completion_tokens": 5}
    assert cost_of(None, token_counts(usage)) is None
    assert cost_of(model(input_price="1"), token_counts(usage)) is None
    assert cost_of(model(output_price="1"), token_counts(usage)) is None


def test_an_embedding_model_needs_only_its_input_price() -> None:
    embedding = ModelInfo(
        id="e",
        provider="openai",
        mode="embedding",
        context_window=8191,
        input_price="0.02",
        embedding_dimensions=8,
    )
    assert cost_of(embedding, token_counts({"prompt_tokens": 1000})) == Decimal("0.00002")
    assert cost_of(model(input_price="1"), token_counts({"prompt_tokens": 5})) is None
