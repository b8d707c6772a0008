from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from ai_gateway.errors import InvalidRequestError
from ai_gateway.security.config import RequestLimits
from ai_gateway.security.request_limits import (
    check_chat,
    check_embeddings,
    json_depth_exceeds,
)

DEFAULTS = RequestLimits()


def chat(*contents: Any, **extra: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": content} for content in contents]
    return {"model": "fast", "messages": messages, **extra}


def nested(levels: int) -> dict[str, Any]:
    """A dict `levels` deep (`{}` is 1), built without recursion."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def refused(body: Any, limits: RequestLimits = DEFAULTS, *, embeddings: bool = False) -> Any:
    with pytest.raises(InvalidRequestError) as info:
        (check_embeddings if embeddings else check_chat)(body, limits)
    assert info.value.status == 400
    return info.value


def test_the_defaults_are_documented_values() -> None:
    assert DEFAULTS.model_dump() == {
        "max_messages": 2048,
        "max_message_chars": 1_000_000,
        "max_total_chars": None,
        "max_tokens_cap": None,
        "max_json_depth": 64,
        "max_embedding_inputs": 2048,
    }


@pytest.mark.parametrize(
    "settings",
    [{"max_messages": 0}, {"max_json_depth": 3}, {"max_tokens_cap": 0}, {"max_bytes": 10}],
)
def test_nonsensical_limits_are_refused(settings: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RequestLimits(**settings)


def test_a_typical_body_passes() -> None:
    body = {
        "model": "fast",
        "messages": [
            {"role": "system", "content": "be terse"},
            {"role": "user", "content": [{"type": "text", "text": "what is this?"}]},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "function": {}}]},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": nested(20)}}],
        "max_tokens": 100,
    }
    check_chat(body, RequestLimits(max_tokens_cap=100, max_total_chars=21))


def test_too_many_messages() -> None:
    limits = RequestLimits(max_messages=3)
    check_chat(chat("a", "b", "c"), limits)
    error = refused(chat("a", "b", "c", "d"), limits)
    assert (error.param, error.code) == ("messages", "too_many_messages")
    assert error.message == "'messages' has 4 entries; this gateway accepts at most 3."


def test_a_message_too_long_is_named_by_its_index() -> None:
    limits = RequestLimits(max_message_chars=10)
    check_chat(
        chat("x" * 10, [{"type": "text", "text": "y" * 5}, {"type": "text", "text": "z" * 5}]),
        limits,
    )
    error = refused(
        chat("ok", [{"type": "text", "text": "y" * 6}, {"type": "text", "text": "z" * 5}]), limits
    )
    assert (error.param, error.code) == ("messages[1].content", "message_too_long")
    assert error.message == (
        "'messages[1].content' has 11 characters of text; this gateway accepts at most 10 "
        "per message."
    )
    assert refused(chat("x" * 11), limits).param == "messages[0].content"


def test_non_text_parts_do_not_count_as_text() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 100}}
    check_chat(chat([image, {"type": "text", "text": "hi"}]), RequestLimits(max_message_chars=2))


def test_total_characters() -> None:
    limits = RequestLimits(max_total_chars=10)
    check_chat(chat("x" * 4, "y" * 6), limits)
    error = refused(chat("x" * 4, "y" * 7), limits)
    assert (error.param, error.code) == ("messages", "messages_too_long")
    assert "11 characters of text in all" in error.message
    assert "at most 10" in error.message


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_cap(field: str) -> None:
    limits = RequestLimits(max_tokens_cap=4096)
    check_chat(chat("hi", **{field: 4096}), limits)
    error = refused(chat("hi", **{field: 4097}), limits)
    assert (error.param, error.code) == (field, "max_tokens_too_large")
    assert error.message == f"'{field}' is 4097; this gateway accepts at most 4096."
    check_chat(chat("hi", **{field: 10**9}), DEFAULTS)  # no cap configured


def test_json_depth_exceeds_counts_levels() -> None:
    assert not json_depth_exceeds("scalar", 0)
    assert not json_depth_exceeds({}, 1)
    assert json_depth_exceeds({}, 0)
    assert not json_depth_exceeds({"a": [1, {"b": 2}]}, 3)
    assert json_depth_exceeds({"a": [1, {"b": 2}]}, 2)
    assert json_depth_exceeds([[], [[[]]]], 3)
    assert not json_depth_exceeds(nested(64), 64)
    assert json_depth_exceeds(nested(65), 64)


def test_ten_thousand_levels_are_refused_without_recursion() -> None:
    deep_list: list[Any] = []
    for _ in range(10_000):
        deep_list = [deep_list]
    assert json_depth_exceeds(nested(10_000), 64)
    assert json_depth_exceeds(deep_list, 64)
    error = refused(chat("hi", metadata=nested(10_000)))
    assert error.code == "json_too_deep"
    assert error.param is None
    assert "more than 64 levels deep" in error.message
    assert refused({"model": "m", "input": deep_list}, embeddings=True).code == "json_too_deep"


def test_depth_counts_the_whole_body_at_the_limit() -> None:
    limits = RequestLimits(max_json_depth=10)
    # body(1) > messages(2) > message(3) > content(4) > part(5) > extra(6..10)
    at_limit = chat([{"type": "text", "text": "hi", "x": nested(5)}])
    check_chat(at_limit, limits)
    too_deep = chat([{"type": "text", "text": "hi", "x": nested(6)}])
    assert refused(too_deep, limits).code == "json_too_deep"
    check_chat({"model": "m", "messages": [], "tools": nested(9)}, limits)
    assert refused({"model": "m", "messages": [], "tools": nested(10)}, limits).code == (
        "json_too_deep"
    )
    check_chat({"model": "m", "messages": [[nested(7)]]}, limits)
    assert refused({"model": "m", "messages": [[nested(8)]]}, limits).code == "json_too_deep"
    assert refused({"model": "m", "tools": nested(10)}, limits).code == "json_too_deep"


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "text",
        {"messages": None},
        {"messages": "hello"},
        {"messages": {"role": "user"}},
        {"messages": [None, 3, "x", [], {"content": 42}, {"content": {"text": "x"}}]},
        {"messages": [{"content": [None, 1, {"text": None}, {"text": ["x"]}, {"no": "text"}]}]},
        {"messages": [{"role": "user", "content": "h"}], "max_tokens": "many"},
        {"messages": [{"role": "user", "content": "h"}], "max_tokens": True},
        {"messages": [{"role": "user", "content": "h"}], "max_tokens": 1e12},
        {"input": None},
        {"input": {"a": 1}},
    ],
)
def test_odd_types_are_left_to_the_schema(body: Any) -> None:
    strict = RequestLimits(max_tokens_cap=1, max_total_chars=1, max_message_chars=1)
    check_chat(body, strict)
    check_embeddings(body, strict)


def test_odd_messages_still_count_towards_the_limit() -> None:
    error = refused({"messages": [None, 1, "x"]}, RequestLimits(max_messages=2))
    assert error.code == "too_many_messages"


def test_too_many_embedding_inputs() -> None:
    limits = RequestLimits(max_embedding_inputs=3)
    check_embeddings({"model": "m", "input": ["a", "b", "c"]}, limits)
    check_embeddings({"model": "m", "input": "a single string of any length"}, limits)
    error = refused({"model": "m", "input": ["a", "b", "c", "d"]}, limits, embeddings=True)
    assert (error.param, error.code) == ("input", "too_many_inputs")
    assert error.message == "'input' has 4 items; this gateway accepts at most 3."
