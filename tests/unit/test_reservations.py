"""Budget reservations and the most a request can cost (what is reserved)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from ai_gateway.model_registry import ModelInfo, load_default_registry
from ai_gateway.security.reservations import Reservations
from ai_gateway.usage.estimate import COUNT_CHARS, max_cost
from ai_gateway.usage.tokens import TokenCounter

MINI = load_default_registry().get("openai", "gpt-4o-mini")
PROMPT = {"messages": [{"role": "user", "content": "hello there"}]}


def test_a_reservation_is_seen_by_the_next_and_given_back_in_its_own_period() -> None:
    now = [datetime(2026, 12, 31, 23, 59, tzinfo=UTC)]
    book = Reservations(clock=lambda: now[0])
    slot, before = book.reserve("key:k", "day", Decimal("0.5"))
    assert before == 0
    _, before = book.reserve("key:k", "day", Decimal("0.25"))
    assert before == Decimal("0.5")
    assert book.held("key:k", "month") == 0  # another budget
    now[0] = datetime(2027, 1, 1, 0, 1, tzinfo=UTC)  # the next day: nothing reserved yet
    assert book.held("key:k", "day") == 0
    book.release(slot, Decimal("0.5"))  # released from the day it was made in
    now[0] = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    assert book.held("key:k", "day") == Decimal("0.25")
    book.release(slot, Decimal("0.25"))
    assert book._held == {}


def test_the_most_a_chat_request_can_cost_bounds_prompt_and_output() -> None:
    counter = TokenCounter()
    assert MINI is not None
    assert MINI.input_price is not None
    assert MINI.output_price is not None
    prompt = counter.count_messages("openai", "gpt-4o-mini", PROMPT["messages"]).tokens
    capped = max_cost(counter, MINI, "openai", "gpt-4o-mini", {**PROMPT, "max_tokens": 100})
    assert capped == (prompt * MINI.input_price + 100 * MINI.output_price) / 1_000_000
    newer = {**PROMPT, "max_tokens": 100, "max_completion_tokens": 10}
    assert (
        max_cost(counter, MINI, "openai", "gpt-4o-mini", newer)
        == (prompt * MINI.input_price + 10 * MINI.output_price) / 1_000_000
    )
    unbounded = max_cost(counter, MINI, "openai", "gpt-4o-mini", PROMPT)
    assert MINI.max_output_tokens is not None
    assert (
        unbounded
        == (prompt * MINI.input_price + MINI.max_output_tokens * MINI.output_price) / 1_000_000
    )


def test_a_huge_prompt_is_bounded_by_its_bytes_not_tokenized() -> None:
    counter = TokenCounter()
    assert MINI is not None
    assert MINI.input_price is not None
    text = "word " * COUNT_CHARS
    body = {"messages": [{"role": "user", "content": text}], "max_tokens": 1}
    cost = max_cost(counter, MINI, "openai", "gpt-4o-mini", body)
    assert cost is not None
    tokens = counter.count_messages("openai", "gpt-4o-mini", body["messages"]).tokens
    assert cost > tokens * MINI.input_price / 1_000_000  # bytes: more than the tokens


def test_unpriced_models_have_no_bound_and_embeddings_no_output() -> None:
    counter = TokenCounter()
    bare = ModelInfo(id="x", provider="openai", mode="chat", context_window=1000)
    assert max_cost(counter, bare, "openai", "x", PROMPT) is None
    assert max_cost(counter, None, "openai", "x", PROMPT) is None
    embed = load_default_registry().get("openai", "text-embedding-3-small")
    assert embed is not None
    assert embed.input_price is not None
    cost = max_cost(counter, embed, "openai", "text-embedding-3-small", {"input": ["a b c"]})
    tokens = counter.count_text("openai", "text-embedding-3-small", ["a b c"]).tokens
    assert cost == tokens * embed.input_price / 1_000_000
