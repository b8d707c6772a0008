from __future__ import annotations

from typing import Any

import pytest

from ai_gateway.errors import InvalidRequestError
from ai_gateway.schemas.chat import ChatCompletionRequest
from ai_gateway.schemas.embeddings import EmbeddingsRequest
from ai_gateway.schemas.validation import parse_body

OK: dict[str, Any] = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}


def bad(body: object) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as info:
        parse_body(ChatCompletionRequest, body)
    assert info.value.status == 400
    return info.value


def test_minimal_request_is_valid_and_unknown_fields_survive() -> None:
    parsed = parse_body(
        ChatCompletionRequest, {**OK, "reasoning_effort": "low", "metadata": {"a": 1}}
    )
    assert parsed.model == "fast"
    assert parsed.model_extra == {"reasoning_effort": "low", "metadata": {"a": 1}}


def test_full_featured_request_is_valid() -> None:
    body = {
        "model": "fast",
        "messages": [
            {"role": "developer", "content": "be terse"},
            {"role": "system", "content": [{"type": "text", "text": "sys"}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "f", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "42"},
        ],
        "tools": [
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
        ],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {"type": "object"}, "strict": True},
        },
        "stop": ["\n\n"],
        "temperature": 0.2,
        "top_p": 1,
        "max_completion_tokens": 100,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    parsed = parse_body(ChatCompletionRequest, body)
    assert parsed.stream_options is not None
    assert parsed.stream_options.include_usage


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ({"messages": OK["messages"]}, "model", "Missing required parameter: 'model'"),
        ({"model": "fast"}, "messages", "Missing required parameter: 'messages'"),
        ({**OK, "messages": []}, "messages", "at least 1 item"),
        ({**OK, "temperature": 3}, "temperature", "less than or equal to 2"),
        ({**OK, "max_tokens": "5"}, "max_tokens", "valid integer"),
        ({**OK, "max_tokens": 0}, "max_tokens", "greater than or equal to 1"),
        ({**OK, "stream": "yes"}, "stream", "valid boolean"),
        ({**OK, "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role", "'system'"),
        ({**OK, "messages": [{"role": "user"}]}, "messages[0]", "needs 'content'"),
        (
            {**OK, "messages": [{"role": "tool", "content": "x"}]},
            "messages[0]",
            "needs 'tool_call_id'",
        ),
        ({**OK, "tool_choice": "sometimes"}, "tool_choice", "'none'"),
        ({**OK, "tools": [{"type": "function"}]}, "tools[0]", "needs 'function'"),
        ({**OK, "response_format": {"type": "yaml"}}, "response_format.type", "'text'"),
        (
            {**OK, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "messages[0].content[0]",
            "needs 'image_url'",
        ),
    ],
)
def test_violations_name_the_field(body: dict[str, Any], param: str, fragment: str) -> None:
    err = bad(body)
    assert err.param == param
    assert fragment in err.message
    assert err.to_dict()["error"]["type"] == "invalid_request_error"


def test_non_object_body() -> None:
    assert "JSON object" in bad([1, 2]).message


@pytest.mark.parametrize("value", ["text", ["a", "b"], [1, 2, 3], [[1, 2], [3]]])
def test_embedding_inputs_accepted(value: object) -> None:
    assert parse_body(EmbeddingsRequest, {"model": "e", "input": value}).input == value


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"model": "e", "input": []}, "empty list"),
        ({"model": "e", "input": [[]]}, "empty token list"),
        ({"model": "e", "input": "x", "encoding_format": "hex"}, "'float' or 'base64'"),
        ({"model": "e"}, "Missing required parameter: 'input'"),
    ],
)
def test_embedding_violations(body: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidRequestError, match=fragment):
        parse_body(EmbeddingsRequest, body)


@pytest.mark.parametrize(
    "name",
    [
        "fast",
        "openai/gpt-4o-mini",
        "anthropic/claude-sonnet-4-5@20250929",
        "openai/ft:gpt-4o-mini:org::id",
        "meta-llama/Llama-3.1-8B-Instruct",
        "llama3.1:8b",
        "x" * 256,
    ],
)
def test_real_model_names_are_valid(name: str) -> None:
    assert parse_body(ChatCompletionRequest, {**OK, "model": name}).model == name


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("", "cannot be empty"),
        ("x" * 257, "at most 256 characters; this one has 257"),
        ("gpt-中文", "only the characters"),
        ("gpt\r\nx", "only the characters"),
        ("gpt\x00", "only the characters"),
        ("gpt 4o", "only the characters"),
        ("openai/../x", "'..' as a '/'-separated segment"),
        ("./x", "'..' as a '/'-separated segment"),
    ],
)
def test_bad_model_names_are_refused_with_the_rule(name: str, says: str) -> None:
    for body in ({**OK, "model": name}, {**OK, "models": ["fast", name]}):
        err = bad(body)
        assert err.code == "invalid_model_name"
        assert err.param in ("model", "models[1]")
        assert says in str(err)
    with pytest.raises(InvalidRequestError) as info:
        parse_body(EmbeddingsRequest, {"model": name, "input": "hi"})
    assert info.value.code == "invalid_model_name"
