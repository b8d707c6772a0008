"""Anthropic message -> OpenAI chat.completion, usage, finish reasons and error mapping."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ai_gateway.errors import (
    UpstreamAuthError,
    UpstreamBadRequestError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRateLimitError,
    UpstreamUnavailableError,
)
from ai_gateway.providers.anthropic import map_anthropic_error, messages_url
from ai_gateway.providers.anthropic_response import openai_usage, to_chat_completion
from ai_gateway.routing.deployments import Deployment

WHERE = "anthropic, deployment 'claude/0'"
KEY = "sk-ant-api03-secret-key-value-0000"
DEPLOYMENT = Deployment(
    id="claude/0",
    group="claude",
    provider="anthropic",
    model="claude-sonnet-4-20250514",
    api_base="https://api.anthropic.com",
    api_key=KEY,
)


def message(content: list[dict[str, Any]], stop_reason: str = "end_turn", **usage: int) -> Any:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-20250514",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5, **usage},
    }


def test_text_blocks_are_joined_into_content() -> None:
    reply = to_chat_completion(
        message([{"type": "text", "text": "Hello, "}, {"type": "text", "text": "world."}]),
        None,
        WHERE,
        created=123,
    )
    assert reply["id"] == "msg_01"
    assert reply["object"] == "chat.completion"
    assert reply["created"] == 123
    assert reply["model"] == "claude-sonnet-4-20250514"
    assert reply["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello, world."},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ]


def test_tool_use_blocks_become_tool_calls_with_compact_json_arguments() -> None:
    reply = to_chat_completion(
        message(
            [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Let me check."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Paris", "n": [1, 2]},
                },
                {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}},
            ],
            "tool_use",
        ),
        None,
        WHERE,
    )
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me check."
    assert choice["message"]["tool_calls"] == [
        {
            "id": "toolu_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris","n":[1,2]}'},
        },
        {"id": "toolu_2", "type": "function", "function": {"name": "now", "arguments": "{}"}},
    ]


def test_only_tool_calls_means_null_content() -> None:
    reply = to_chat_completion(
        message([{"type": "tool_use", "id": "t", "name": "f", "input": {}}], "tool_use"),
        None,
        WHERE,
    )
    assert reply["choices"][0]["message"]["content"] is None


def test_response_format_tool_input_becomes_the_content() -> None:
    reply = to_chat_completion(
        message(
            [{"type": "tool_use", "id": "t", "name": "json_response", "input": {"answer": 42}}],
            "tool_use",
        ),
        "json_response",
        WHERE,
    )
    choice = reply["choices"][0]
    assert json.loads(choice["message"]["content"]) == {"answer": 42}
    assert "tool_calls" not in choice["message"]
    assert choice["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("refusal", "content_filter"),
        ("something_new", "stop"),
    ],
)
def test_every_stop_reason(stop_reason: str, finish_reason: str) -> None:
    reply = to_chat_completion(message([{"type": "text", "text": "x"}], stop_reason), None, WHERE)
    assert reply["choices"][0]["finish_reason"] == finish_reason


def test_usage_counts_cache_reads_and_writes_as_prompt_tokens() -> None:
    usage = openai_usage(
        {
            "input_tokens": 10,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 20,
            "output_tokens": 7,
        }
    )
    assert usage == {
        "prompt_tokens": 130,
        "completion_tokens": 7,
        "total_tokens": 137,
        "prompt_tokens_details": {"cached_tokens": 100},
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 20,
    }
    # Older responses and other servers leave the cache fields out (or null).
    assert (
        openai_usage({"input_tokens": 3, "output_tokens": 2, "cache_read_input_tokens": None})[
            "total_tokens"
        ]
        == 5
    )


def test_something_that_is_not_a_message_is_a_protocol_error() -> None:
    for data in ([], {"type": "message"}, {"content": "text"}):
        with pytest.raises(UpstreamProtocolError) as info:
            to_chat_completion(data, None, WHERE)
        assert "deployment 'claude/0'" in info.value.message


def error_body(kind: str, message: str) -> bytes:
    return json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()


def test_error_bodies_map_through_the_status_table() -> None:
    err = map_anthropic_error(
        DEPLOYMENT, 429, error_body("rate_limit_error", "slow down"), {"retry-after": "7"}
    )
    assert isinstance(err, UpstreamRateLimitError)
    assert err.headers == {"Retry-After": "7"}
    assert "slow down" in err.message
    err = map_anthropic_error(DEPLOYMENT, 529, error_body("overloaded_error", "Overloaded"), {})
    assert isinstance(err, UpstreamUnavailableError)
    assert err.status == 503
    assert "Overloaded" in err.message
    err = map_anthropic_error(DEPLOYMENT, 400, error_body("invalid_request_error", "bad"), {})
    assert isinstance(err, UpstreamBadRequestError)
    assert err.status == 400
    err = map_anthropic_error(DEPLOYMENT, 500, b"<html>oops</html>", {})
    assert type(err) is UpstreamError
    assert "oops" in err.message


def test_auth_errors_are_502_and_never_carry_the_key() -> None:
    body = error_body("authentication_error", f"invalid x-api-key {KEY}")
    err = map_anthropic_error(DEPLOYMENT, 401, body, {})
    assert isinstance(err, UpstreamAuthError)
    assert err.status == 502
    assert KEY not in json.dumps(err.to_dict())
    err = map_anthropic_error(DEPLOYMENT, 400, error_body("invalid_request_error", KEY), {})
    assert KEY not in err.message


def test_messages_url_tolerates_a_trailing_v1() -> None:
    assert messages_url("https://api.anthropic.com") == "https://api.anthropic.com/v1/messages"
    assert messages_url("http://h:1/v1/") == "http://h:1/v1/messages"
    assert messages_url("http://h:1/proxy/") == "http://h:1/proxy/v1/messages"
