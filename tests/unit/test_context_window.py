from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ai_gateway.errors import InvalidRequestError
from ai_gateway.model_registry import ModelRegistry, load_default_registry
from ai_gateway.routing.context_window import (
    ContextWindowManager,
    Fits,
    TooLarge,
    Truncated,
    prompt_upper_bound,
)
from ai_gateway.routing.deployments import Deployment
from ai_gateway.usage.tokens import TokenCount, TokenCounter

WINDOW = 400  # the small-window gpt-4o-mini and claude-tiny of these tests
MAX_OUTPUT = 100
SECRET = "sk-context-window-secret-0000"
PROSE = "The quick brown fox jumps over the lazy dog while the gateway counts tokens. "

Message = dict[str, Any]


@cache
def shared_counter() -> TokenCounter:
    return TokenCounter()


@cache
def small_registry() -> ModelRegistry:
    return load_default_registry().with_overrides(
        [
            {
                "provider": "openai",
                "id": "gpt-4o-mini",
                "context_window": WINDOW,
                "max_output_tokens": MAX_OUTPUT,
            },
            {
                "provider": "anthropic",
                "id": "claude-tiny",
                "mode": "chat",
                "context_window": WINDOW,
                "max_output_tokens": MAX_OUTPUT,
            },
            {"provider": "openai", "id": "no-output-limit", "mode": "chat", "context_window": 50},
        ]
    )


class CountingCounter(TokenCounter):
    """Records every count_messages call; delegates to the shared counter (loaded once)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def count_messages(
        self,
        provider: str,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> TokenCount:
        self.calls += 1
        return shared_counter().count_messages(provider, model, messages, tools)


def deployment(model: str = "gpt-4o-mini", provider: str = "openai") -> Deployment:
    return Deployment(
        id="small/0",
        group="small",
        provider=provider,  # type: ignore[arg-type]
        model=model,
        api_base="https://upstream.invalid/v1",
        api_key=SECRET,
    )


def manager(
    counter: TokenCounter | None = None, registry: ModelRegistry | None = None, reserve: int = 1024
) -> ContextWindowManager:
    return ContextWindowManager(
        counter or shared_counter(), registry or small_registry(), default_reserve=reserve
    )


def count(messages: Sequence[Message], tools: Any = None, model: str = "gpt-4o-mini") -> int:
    return shared_counter().count_messages("openai", model, messages, tools).tokens


def msg(role: str, text: str = "", **extra: Any) -> Message:
    return {"role": role, "content": text, **extra}


# --- fits / too large ----------------------------------------------------------------------------


def test_fits_exactly_at_the_boundary_and_not_one_token_over() -> None:
    messages = [msg("system", "Be brief."), msg("user", PROSE * 12)]
    tokens = count(messages)
    assert 150 < tokens < WINDOW
    fits = manager().check(
        deployment(), {"messages": messages, "max_tokens": WINDOW - tokens}, "error"
    )
    assert fits == Fits(tokens)
    over = manager().check(
        deployment(), {"messages": messages, "max_tokens": WINDOW - tokens + 1}, "error"
    )
    assert over == TooLarge(prompt_tokens=tokens, window=WINDOW, reserved=WINDOW - tokens + 1)


@pytest.mark.parametrize(
    ("body", "reserve", "model", "reserved"),
    [
        ({"max_tokens": 7}, 1024, "gpt-4o-mini", 7),
        ({"max_completion_tokens": 9}, 1024, "gpt-4o-mini", 9),
        ({"max_completion_tokens": 9, "max_tokens": 7}, 1024, "gpt-4o-mini", 9),
        ({}, 1024, "gpt-4o-mini", MAX_OUTPUT),  # the default, capped at the model's output limit
        ({}, 30, "gpt-4o-mini", 30),  # the default, below the limit
        ({}, 30, "no-output-limit", 30),  # no published limit: the default
    ],
)
def test_reserved_output(body: dict[str, Any], reserve: int, model: str, reserved: int) -> None:
    messages = [msg("user", PROSE * 30)]  # never fits
    decision = manager(reserve=reserve).check(
        deployment(model), {"messages": messages, **body}, "error"
    )
    assert isinstance(decision, TooLarge)
    assert decision.reserved == reserved
    assert decision.prompt_tokens == count(messages, model=model)


def test_unknown_model_is_not_checked() -> None:
    counter = CountingCounter()
    body = {"messages": [msg("user", PROSE * 100_000)]}
    decision = manager(counter).check(deployment("llama3.2"), body, "error")
    assert decision == Fits(None)
    assert counter.calls == 0


def test_small_prompts_are_not_tokenized() -> None:
    counter = CountingCounter()
    windows = manager(counter, load_default_registry())
    conversation = [msg("system", "You are helpful.")] + [
        msg("user" if i % 2 else "assistant", PROSE * 5) for i in range(60)
    ]
    for provider, model in (("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-5")):
        decision = windows.check(deployment(model, provider), {"messages": conversation}, "error")
        assert decision == Fits(None)
    assert counter.calls == 0


def test_a_prompt_near_the_limit_is_counted() -> None:
    counter = CountingCounter()
    messages = [msg("user", PROSE * 4)]
    tokens = count(messages)
    decision = manager(counter).check(
        deployment(), {"messages": messages, "max_tokens": WINDOW - tokens - 5}, "error"
    )
    assert decision == Fits(tokens)
    assert counter.calls == 1


def test_error_and_fallback_do_not_truncate() -> None:
    messages = [msg("user", PROSE * 12), msg("assistant", PROSE * 12), msg("user", "and now?")]
    body = {"messages": messages, "max_tokens": 50}
    for strategy in ("error", "fallback"):
        decision = manager().check(deployment(), body, strategy)  # type: ignore[arg-type]
        assert decision == TooLarge(count(messages), WINDOW, 50)
    assert isinstance(manager().check(deployment(), body, "truncate-oldest"), Truncated)


def test_the_error_names_the_sizes_and_what_to_do() -> None:
    decision = TooLarge(prompt_tokens=131_072, window=128_000, reserved=1024)
    error = manager().too_large_error(deployment(), decision)
    assert isinstance(error, InvalidRequestError)
    assert error.status == 400
    assert (error.code, error.param) == ("context_length_exceeded", "messages")
    for text in ("'small'", "131,072 tokens", "1,024 tokens", "128,000 tokens", "132,096"):
        assert text in error.message
    for advice in ("Shorten", "max_tokens", "truncate-oldest", "fallback", "larger context"):
        assert advice in error.message
    assert "about" not in error.message
    assert SECRET not in error.message
    assert SECRET not in error.to_json().decode()
    estimated = manager().too_large_error(deployment("claude-tiny", "anthropic"), decision)
    assert "about 131,072 tokens" in estimated.message


# --- the cheap upper bound -----------------------------------------------------------------------

CJK_EMOJI = "漢字かなカナ한글中文😀👍🏽🇯🇵👨‍👩‍👧‍👦🧑🏿‍🚀∑∞ß€\u200d\ufe0f"
texts = st.one_of(
    st.text(max_size=200),
    st.text(alphabet=CJK_EMOJI, max_size=200),
    st.text(alphabet=st.characters(codec="ascii"), max_size=300),
    st.text(alphabet=st.characters(codec="utf-8", min_codepoint=0x80), max_size=100),
    # Rare astral characters: a token per byte, the worst case for every count.
    st.text(alphabet=st.characters(min_codepoint=0x2A700, max_codepoint=0x2B73F), max_size=60),
)
parts = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, texts),
    st.builds(lambda t: {"type": "refusal", "refusal": t}, texts),
    st.builds(
        lambda d: {
            "type": "image_url",
            "image_url": {"url": "https://x.invalid/a.png", "detail": d},
        },
        st.sampled_from(["low", "high", "auto", None]),
    ),
    st.just({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}),
)
tool_calls = st.lists(
    st.builds(
        lambda name, args: {
            "id": "call_1",
            "type": "function",
            "function": {"name": name, "arguments": args},
        },
        texts,
        texts,
    ),
    max_size=3,
)
any_messages = st.lists(
    st.builds(
        lambda role, content, name, calls: {
            "role": role,
            "content": content,
            **({"name": name} if name is not None else {}),
            **({"tool_calls": calls} if calls else {}),
        },
        st.sampled_from(["system", "developer", "user", "assistant", "tool"]),
        st.one_of(st.none(), texts, st.lists(parts, max_size=4)),
        st.one_of(st.none(), texts),
        tool_calls,
    ),
    max_size=30,
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), texts),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=20,
)
any_tools = st.one_of(
    st.none(),
    st.lists(
        st.builds(
            lambda name, params: {
                "type": "function",
                "function": {"name": name, "parameters": params},
            },
            texts,
            json_values,
        ),
        max_size=4,
    ),
)
MODELS = [
    ("openai", "gpt-4o-mini"),  # o200k_base, exact
    ("openai", "gpt-4"),  # cl100k_base, exact
    ("openai", "llama3.2"),  # unknown: estimate
    ("anthropic", "claude-sonnet-4-5"),  # estimate
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_messages, any_tools, st.sampled_from(MODELS))
def test_the_cheap_bound_never_undercounts(
    messages: list[Message], tools: list[Message] | None, model: tuple[str, str]
) -> None:
    counted = shared_counter().count_messages(*model, messages, tools).tokens
    assert prompt_upper_bound(messages, tools) >= counted


DENSE = "".join(chr(0x2A700 + 7 * i) for i in range(300))  # 4 bytes and 4 tokens a character
WORST_CASES = {
    "a token per byte": [msg("user", DENSE)],
    "many one-byte texts": [
        {"role": "user", "content": [{"type": "text", "text": "x"}] * 300, "name": "a"}
    ],
    "many tiny tool calls": [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{"}}
            ]
            * 200,
        }
    ],
    "many messages": [msg("tool", "!", tool_call_id="c") for _ in range(300)],
}


@pytest.mark.parametrize("model", MODELS, ids="/".join)
@pytest.mark.parametrize("messages", WORST_CASES.values(), ids=WORST_CASES.keys())
def test_the_cheap_bound_holds_in_the_worst_cases(
    messages: list[Message], model: tuple[str, str]
) -> None:
    assert prompt_upper_bound(messages) >= shared_counter().count_messages(*model, messages).tokens


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(codec="ascii"), min_size=1, max_size=400))
def test_the_cheap_bound_is_tight_for_text_that_is_one_token_per_byte(text: str) -> None:
    # The bound is useful only if it is not far above the count: at most 1.2 x the text plus
    # framing, whatever the text.
    messages = [msg("user", text)]
    bound = prompt_upper_bound(messages)
    assert bound <= 1.2 * len(text) + 30
    assert bound >= count(messages)


# --- truncate-oldest: examples -------------------------------------------------------------------


def fitting_window(kept: list[Message]) -> dict[str, Any]:
    """A max_tokens that leaves exactly room for `kept` (and no more)."""
    return {"max_tokens": WINDOW - count(kept)}


def test_drops_whole_old_turns_and_keeps_system_and_the_last_user_message() -> None:
    system = msg("system", "Be brief.")
    u1, a1 = msg("user", PROSE * 4), msg("assistant", "Sure.")
    u2, a2 = msg("user", "Short question?"), msg("assistant", "Short answer.")
    u3 = msg("user", "And the last one?")
    messages = [system, u1, a1, u2, a2, u3]
    before = copy.deepcopy(messages)
    # There would be room for a1 too, but a history opening with an answer is not kept.
    body = {"messages": messages, **fitting_window([system, a1, u2, a2, u3])}
    decision = manager().check(deployment(), body, "truncate-oldest")
    assert decision == Truncated(
        [system, u2, a2, u3], dropped=2, prompt_tokens=count([system, u2, a2, u3])
    )
    assert isinstance(decision, Truncated)
    assert decision.messages is not messages
    assert messages == before


def test_keeps_the_newest_turns_that_fit_not_just_the_last() -> None:
    system = msg("system", "Be brief.")
    turns = [
        [msg("user", f"Question {i}? " * 3), msg("assistant", f"Answer {i}. " * 3)]
        for i in range(8)
    ]
    messages = [system, *[m for turn in turns for m in turn], msg("user", "Last?")]
    expected = [system, *turns[5], *turns[6], *turns[7], messages[-1]]
    body = {"messages": messages, "max_tokens": WINDOW - count(expected) - 2}  # turn 4 won't fit
    decision = manager().check(deployment(), body, "truncate-oldest")
    assert isinstance(decision, Truncated)
    assert decision.messages == expected
    assert decision.dropped == len(messages) - len(expected) == 10


def call(call_id: str) -> Message:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": "search", "arguments": '{"q": "' + PROSE + '"}'},
            }
        ],
    }


def result(call_id: str, text: str = PROSE) -> Message:
    return {"role": "tool", "tool_call_id": call_id, "content": text}


def test_the_current_turn_loses_its_oldest_tool_rounds_as_units() -> None:
    system, user = msg("system", "Use tools."), msg("user", "Find it.")
    messages = [
        system,
        user,
        call("a"),
        result("a"),
        call("b"),
        result("b"),
        call("c"),
        result("c"),
    ]
    expected = [system, user, call("c"), result("c")]
    body = {"messages": messages, **fitting_window(expected)}
    decision = manager().check(deployment(), body, "truncate-oldest")
    assert isinstance(decision, Truncated)
    assert decision.messages == expected
    assert decision.dropped == 4


def test_parallel_tool_results_stay_with_their_call() -> None:
    system, user = msg("system", "Use tools."), msg("user", "Find both.")
    both = call("x")
    both["tool_calls"] = [*both["tool_calls"], {**both["tool_calls"][0], "id": "y"}]
    messages = [system, user, both, result("x"), result("y", "short"), msg("assistant", "Done.")]
    # Room for everything except the first result: the whole unit must go, never half of it.
    body = {"messages": messages, "max_tokens": WINDOW - count(messages) + count([result("x")]) - 7}
    decision = manager().check(deployment(), body, "truncate-oldest")
    assert isinstance(decision, Truncated)
    assert decision.messages == [system, user, messages[-1]]


def test_a_leading_orphan_tool_result_is_dropped() -> None:
    system = msg("system", "Be brief.")
    orphan = result("gone", "x")
    reply, user = msg("assistant", PROSE * 3), msg("user", "Next?")
    messages = [system, orphan, reply, user]
    body = {"messages": messages, **fitting_window([system, user])}
    decision = manager().check(deployment(), body, "truncate-oldest")
    assert isinstance(decision, Truncated)
    assert decision.messages == [system, user]


def test_an_orphan_result_never_follows_the_kept_user_message() -> None:
    system, user = msg("system", "Use tools."), msg("user", "Find it.")
    orphan, done = result("gone", "x"), msg("assistant", "Done.")
    messages = [system, user, call("a"), result("a"), orphan, done]
    body = {"messages": messages, **fitting_window([system, user, orphan, done])}
    decision = manager().check(deployment(), body, "truncate-oldest")
    assert isinstance(decision, Truncated)
    assert decision.messages == [system, user, done]


def test_developer_messages_are_kept_where_they_are() -> None:
    system, developer = msg("system", "Be brief."), msg("developer", "Answer in French.")
    old = [msg("user", PROSE * 2), msg("assistant", PROSE * 2)]
    messages = [system, *old, developer, msg("user", "Bonjour?")]
    body = {"messages": messages, **fitting_window([system, developer, messages[-1]])}
    decision = manager().check(deployment(), body, "truncate-oldest")
    assert isinstance(decision, Truncated)
    assert decision.messages == [system, developer, messages[-1]]


def test_too_large_when_system_and_last_user_message_alone_do_not_fit() -> None:
    messages = [
        msg("system", PROSE * 12),
        msg("user", "Hi"),
        msg("assistant", "Hello"),
        msg("user", PROSE * 12),
    ]
    decision = manager().check(
        deployment(), {"messages": messages, "max_tokens": 50}, "truncate-oldest"
    )
    assert decision == TooLarge(count(messages), WINDOW, 50)


def test_a_result_away_from_its_call_is_still_dropped_with_it() -> None:
    system, user = msg("system", "Use tools."), msg("user", "Find it.")
    aside = msg("assistant", "Let me look that up.")
    messages = [system, user, call("a"), aside, result("a"), msg("assistant", "Found it.")]
    # Room to drop only the call; the aside and the result must go with it.
    body = {"messages": messages, "max_tokens": WINDOW - count(messages) + count([call("a")]) - 6}
    decision = manager().check(deployment(), body, "truncate-oldest")
    assert isinstance(decision, Truncated)
    assert decision.messages == [system, user, messages[-1]]


class BatchPenaltyCounter(CountingCounter):
    """A counter whose framing is not additive: prompts of more than two messages cost more."""

    def count_messages(
        self,
        provider: str,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> TokenCount:
        counted = super().count_messages(provider, model, messages, tools)
        extra = 30 if len(messages) > 2 else 0
        return TokenCount(counted.tokens + extra, counted.exact, counted.method)


def test_the_truncated_prompt_is_counted_whole() -> None:
    system, u3 = msg("system", "Be brief."), msg("user", "Last?")
    u1, a1, u2, a2 = (
        msg("user", PROSE * 4),
        msg("assistant", PROSE * 4),
        msg("user", "Q"),
        msg("assistant", "A"),
    )
    messages = [system, u1, a1, u2, a2, u3]
    # By per-message sums [system, u2, a2, u3] fits; counted whole it is 30 tokens more.
    body = {"messages": messages, **fitting_window([system, u2, a2, u3])}
    decision = manager(BatchPenaltyCounter()).check(deployment(), body, "truncate-oldest")
    assert decision == Truncated([system, u3], dropped=4, prompt_tokens=count([system, u3]))


# --- truncate-oldest: properties -----------------------------------------------------------------

words = st.text(alphabet="abc xyz 漢字😀.,", max_size=60)


@st.composite
def conversations(draw: st.DrawFn) -> list[Message]:
    ids = iter(range(1_000_000))
    messages = [msg("system", draw(words)) for _ in range(draw(st.integers(0, 2)))]
    if draw(st.booleans()):
        messages.append(result("orphan", draw(words)))
    for _ in range(draw(st.integers(1, 6))):
        if draw(st.integers(0, 5)) == 0:
            messages.append(msg("developer", draw(words)))
        messages.append(msg("user", draw(words)))
        for _ in range(draw(st.integers(0, 3))):
            if draw(st.booleans()):
                messages.append(msg("assistant", draw(words)))
            else:
                calls = [f"call_{next(ids)}" for _ in range(draw(st.integers(1, 3)))]
                arguments = draw(words)
                messages.append(
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": c,
                                "type": "function",
                                "function": {"name": "f", "arguments": arguments},
                            }
                            for c in calls
                        ],
                    }
                )
                if draw(st.integers(0, 5)) == 0:  # a message between a call and its results
                    messages.append(msg("assistant", draw(words)))
                messages.extend(result(c, draw(words)) for c in calls)
            if draw(st.integers(0, 5)) == 0:  # a result whose call the client already dropped
                messages.append(result(f"gone_{next(ids)}", draw(words)))
    return messages


PINNED = ("system", "developer")


def index_in(item: Message, items: Sequence[Message]) -> int:
    return next(i for i, m in enumerate(items) if m is item)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations(), st.floats(0.25, 1.1))
def test_truncation_properties(messages: list[Message], share: float) -> None:
    # Room for `share` of the conversation, so that most examples need truncating.
    max_tokens = min(WINDOW - 1, max(1, WINDOW - round(count(messages) * share)))
    before = copy.deepcopy(messages)
    body = {"messages": messages, "max_tokens": max_tokens}
    decision = manager().check(deployment(), body, "truncate-oldest")
    assert messages == before
    users = [m for m in messages if m["role"] == "user"]
    last_user = users[-1]
    if isinstance(decision, Fits):
        assert count(messages) + max_tokens <= WINDOW
        return
    if isinstance(decision, TooLarge):
        assert decision == TooLarge(count(messages), WINDOW, max_tokens)
        minimal = [m for m in messages if m["role"] in PINNED or m is last_user]
        assert count(minimal) + max_tokens > WINDOW
        return
    kept = decision.messages
    # It fits, and says what it counted.
    assert decision.prompt_tokens == count(kept)
    assert decision.prompt_tokens + max_tokens <= WINDOW
    assert count(messages) + max_tokens > WINDOW
    assert decision.dropped == len(messages) - len(kept) > 0
    # A subsequence of the request's own messages, in order.
    positions = [index_in(m, messages) for m in kept]
    assert positions == sorted(positions)
    # System and developer messages and the last user message are always kept.
    assert all(any(k is m for k in kept) for m in messages if m["role"] in PINNED or m is last_user)
    # What else is kept is the newest messages: a suffix.
    rest = [m for m in messages if m["role"] not in PINNED and m is not last_user]
    kept_rest = [m for m in kept if m["role"] not in PINNED and m is not last_user]
    assert all(a is b for a, b in zip(kept_rest, rest[len(rest) - len(kept_rest) :], strict=True))
    # The history opens with a user message, keeps each call with all its results and each
    # tool result with the message before it (its call, a sibling result, or what the client
    # sent before an orphan result).
    history = [m for m in kept if m["role"] not in PINNED]
    assert history[0]["role"] == "user"
    sent = [m for m in messages if m["role"] not in PINNED]
    for position, m in enumerate(history):
        if m["role"] == "tool":
            sent_before = sent[index_in(m, sent) - 1]
            assert position > 0
            assert history[position - 1] is sent_before
        for c in m.get("tool_calls") or ():
            results = [r for r in sent if r.get("tool_call_id") == c["id"]]
            assert results
            assert all(any(r is k for k in history) for r in results)
