"""A Messages API request as the gateway's OpenAI-shaped view (messages/request.py), what other
providers cannot take in it, and the view sent on to Anthropic's translator and back."""

from __future__ import annotations

from typing import Any

import pytest

from ai_gateway.errors import InvalidRequestError
from ai_gateway.messages.errors import error_dict, error_type
from ai_gateway.messages.request import to_view
from ai_gateway.messages.schema import MessagesRequest
from ai_gateway.providers.anthropic_request import translate_request
from ai_gateway.providers.base import ChatRequest
from ai_gateway.providers.native import NativeRequest
from ai_gateway.schemas.chat import ChatCompletionRequest
from ai_gateway.schemas.validation import parse_body

PNG = "iVBORw0KGgo="
WEATHER = {"name": "weather", "input_schema": {"type": "object", "properties": {}}}


def view_of(**body: Any) -> tuple[dict[str, Any], NativeRequest]:
    body = {"model": "m", "max_tokens": 10, **body}
    parse_body(MessagesRequest, body)
    view, unsupported = to_view(body)
    parse_body(ChatCompletionRequest, view)  # the view is a valid chat request
    return view, NativeRequest("anthropic", body, view, {}, unsupported)


def test_a_conversation_with_tools() -> None:
    view, native = view_of(
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "tu_1", "name": "weather", "input": {"c": "P"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "tu_1", "content": "Sunny"},
                    {"type": "text", "text": "And tomorrow?"},
                ],
            },
        ],
        tools=[WEATHER],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        metadata={"user_id": "u-1"},
        stop_sequences=["END"],
        temperature=0.5,
    )
    assert view["messages"] == [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {
                    "id": "tu_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"c":"P"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "tu_1", "content": "Sunny"},
        {"role": "user", "content": [{"type": "text", "text": "And tomorrow?"}]},
    ]
    assert view["tools"] == [
        {"type": "function", "function": {"name": "weather", "parameters": WEATHER["input_schema"]}}
    ]
    assert view["tool_choice"] == "required"
    assert view["parallel_tool_calls"] is False
    assert (view["user"], view["stop"], view["temperature"]) == ("u-1", ["END"], 0.5)
    assert view["max_completion_tokens"] == 10
    assert native.refusal("openai") is None
    assert native.refusal("gemini") is None


def test_media_becomes_content_parts() -> None:
    view, native = view_of(
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
                    {
                        "type": "document",
                        "title": "spec.pdf",
                        "source": {
                            "type": "base64",
                            "media_type": "application/pdf",
                            "data": "JVBE",
                        },
                    },
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": "notes"},
                    },
                ],
            }
        ]
    )
    assert view["messages"][0]["content"] == [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
        {
            "type": "file",
            "file": {"filename": "spec.pdf", "file_data": "data:application/pdf;base64,JVBE"},
        },
        {"type": "text", "text": "notes"},
    ]
    assert native.unsupported == ()


@pytest.mark.parametrize(
    ("body", "param", "providers"),
    [
        ({"top_k": 3}, "top_k", {"openai"}),
        ({"stop_sequences": ["a", "b", "c", "d", "e"]}, "stop_sequences", {"openai"}),
        ({"container": "c"}, "container", {"openai", "gemini"}),
        ({"tools": [{"type": "bash_20250124", "name": "bash"}]}, "tools[0]", {"openai", "gemini"}),
        (
            {"messages": [{"role": "user", "content": [{"type": "search_result", "x": 1}]}]},
            "messages[0].content[0]",
            {"openai", "gemini"},
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "x"}]},
                    {"role": "user", "content": "go on"},
                ]
            },
            "messages[1].content[0]",
            {"openai", "gemini"},
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}],
                    }
                ]
            },
            "messages[0].content[0].source",
            {"openai", "gemini"},
        ),
    ],
)
def test_what_other_providers_cannot_take(
    body: dict[str, Any], param: str, providers: set[str]
) -> None:
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    _, native = view_of(**body)
    for provider in ("openai", "gemini", "anthropic"):
        refusal = native.refusal(provider)
        if provider in providers:
            assert refusal is not None
            assert refusal.param == param
            assert refusal.message.startswith(f"{param}: ")
            assert refusal.status == 400
        else:
            assert refusal is None


def test_thinking() -> None:
    signed = {"type": "thinking", "thinking": "hm", "signature": "sig"}
    unsigned = {"type": "thinking", "thinking": "hm", "signature": ""}
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [unsigned, {"type": "text", "text": "Hello"}]},
        {"role": "user", "content": "more"},
    ]
    view, native = view_of(messages=messages, thinking={"type": "enabled", "budget_tokens": 2000})
    assert view["messages"][1] == {"role": "assistant", "content": "Hello"}
    assert view["reasoning_effort"] == "low"
    assert native.refusal("openai") is None  # a block the gateway rendered: left out
    messages[1]["content"][0] = signed
    _, native = view_of(messages=messages)
    refusal = native.refusal("openai")
    assert refusal is not None
    assert refusal.param == "messages[1].content[0]"
    assert "signature" in refusal.message
    for budget, effort in ((8000, "medium"), (20000, "high")):
        view, _ = view_of(
            messages=messages[:1], thinking={"type": "enabled", "budget_tokens": budget}
        )
        assert view["reasoning_effort"] == effort


def test_tool_choices() -> None:
    base: dict[str, Any] = {"messages": [{"role": "user", "content": "x"}], "tools": [WEATHER]}
    choices = {
        "auto": "auto",
        "none": "none",
        "any": "required",
    }
    for kind, expected in choices.items():
        view, _ = view_of(**base, tool_choice={"type": kind})
        assert view["tool_choice"] == expected
    view, _ = view_of(**base, tool_choice={"type": "tool", "name": "weather"})
    assert view["tool_choice"] == {"type": "function", "function": {"name": "weather"}}
    with pytest.raises(InvalidRequestError) as caught:
        view_of(**base, tool_choice={"type": "tool"})
    assert caught.value.param == "tool_choice.name"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, "messages[0].role"),
        (
            {"max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "temperature": 1.5},
            "temperature",
        ),
        (
            {
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
                "tool_choice": {"type": "x"},
            },
            "tool_choice.type",
        ),
    ],
)
def test_schema_names_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_body(MessagesRequest, {"model": "m", **body})
    assert caught.value.param == param


def test_a_malformed_block_is_refused_whatever_the_provider() -> None:
    bad = {"role": "assistant", "content": [{"type": "tool_use", "id": "x", "name": "y"}]}
    with pytest.raises(InvalidRequestError) as caught:
        view_of(messages=[{"role": "user", "content": "x"}, bad])
    assert caught.value.param == "messages[1].content[0]"


def test_the_view_translates_back_for_anthropic() -> None:
    """A view (the path a stage-changed request takes) translates to the Messages it came from."""
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "tu_1", "name": "weather", "input": {"c": "P"}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "tu_1", "content": "Sunny"}],
        },
    ]
    view, _ = view_of(messages=messages, system="Be brief.", tools=[WEATHER])
    request = ChatRequest(view, ChatCompletionRequest.model_validate(view))
    body = translate_request(request, "claude-x", 1).body
    assert body["system"] == [{"type": "text", "text": "Be brief."}]
    assert body["messages"][1] == messages[1]
    assert body["messages"][2]["content"][0]["tool_use_id"] == "tu_1"
    assert body["tools"] == [{"name": "weather", "input_schema": WEATHER["input_schema"]}]


def test_error_types_follow_anthropics_table() -> None:
    assert [
        error_type(s) for s in (400, 401, 402, 403, 404, 405, 413, 429, 500, 502, 503, 504)
    ] == [
        "invalid_request_error",
        "authentication_error",
        "billing_error",
        "permission_error",
        "not_found_error",
        "invalid_request_error",
        "request_too_large",
        "rate_limit_error",
        "api_error",
        "api_error",
        "overloaded_error",
        "timeout_error",
    ]
    error = InvalidRequestError("max_tokens: required", code="x")
    assert error_dict(error, "req-1") == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens: required", "code": "x"},
        "request_id": "req-1",
    }
