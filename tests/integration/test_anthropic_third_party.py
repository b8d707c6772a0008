"""Against Anthropic-format upstreams that are not the project's own: fakellm (PyPI) and aimock
(npm), each run as its own process. The official SDK talks to the gateway; the gateway talks
to their `/v1/messages`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from test_anthropic_emulator import WEATHER, tool_call_stream

from conftest import GatewayFactory
from harness import start_aimock, start_fakellm

FAKELLM_RULES = """
version: 1
defaults:
  fallback: deterministic_echo
rules:
  - name: weather_tool
    when:
      tools_include: get_weather
    respond:
      tool_calls:
        - name: get_weather
          arguments: {city: "Paris", days: 3}
  - name: greeting
    when:
      messages_contain: "hello claude gateway"
    respond:
      content: "Hello from fakellm, speaking Anthropic."
  - name: overloaded
    when:
      messages_contain: "please fail"
    respond:
      status: 529
      error: "fakellm is overloaded"
"""

AIMOCK_FIXTURES = {
    "fixtures": [
        {
            "match": {"toolResultContains": "sunny"},
            "response": {"content": "It is sunny in Paris, enjoy."},
        },
        {
            "match": {"userMessage": "hello aimock"},
            "response": {
                "content": "Hello from aimock, in Anthropic's format.",
                "usage": {"input_tokens": 11, "output_tokens": 7},
            },
            "chunkSize": 6,
        },
        {
            "match": {"userMessage": "think first"},
            "response": {"content": "The answer is 4.", "reasoning": "Two plus two is four."},
        },
        {
            "match": {"toolName": "get_weather"},
            "response": {
                "toolCalls": [{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}]
            },
            "chunkSize": 5,
        },
    ]
}


def sdk_for(start_gateway: GatewayFactory, base: str) -> openai.OpenAI:
    gw = start_gateway(
        "models:\n  - {name: claude, provider: anthropic, model: claude-sonnet-4-5, "
        f"api_base: '{base}', api_key: sk-ant-third-party-unused}}\n"
    )
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0)


def text_of(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def finish_of(chunks: list[Any]) -> list[str]:
    return [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]


# -- fakellm ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fakellm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with start_fakellm(tmp_path_factory.mktemp("fakellm-anthropic"), FAKELLM_RULES) as url:
        yield url


@pytest.fixture
def fake_sdk(fakellm: str, start_gateway: GatewayFactory) -> Iterator[openai.OpenAI]:
    httpx.post(f"{fakellm}/_fakellm/reset")
    with sdk_for(start_gateway, fakellm) as client:
        yield client


def test_fakellm_chat_and_streamed_chat(fake_sdk: openai.OpenAI) -> None:
    messages: Any = [
        {"role": "system", "content": "Be nice."},
        {"role": "user", "content": "hello claude gateway"},
    ]
    reply = fake_sdk.chat.completions.create(model="claude", messages=messages)
    assert reply.choices[0].message.content == "Hello from fakellm, speaking Anthropic."
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    chunks = list(
        fake_sdk.chat.completions.create(
            model="claude",
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert text_of(chunks) == "Hello from fakellm, speaking Anthropic."
    assert finish_of(chunks) == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None


def test_fakellm_tool_calls(fake_sdk: openai.OpenAI) -> None:
    reply = fake_sdk.chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "weather?"}], tools=[WEATHER]
    )
    (call,) = reply.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris", "days": 3}  # type: ignore[union-attr]
    assert reply.choices[0].finish_reason == "tool_calls"
    chunks = list(
        fake_sdk.chat.completions.create(
            model="claude",
            messages=[{"role": "user", "content": "weather, streamed?"}],
            tools=[WEATHER],
            stream=True,
        )
    )
    (streamed,) = tool_call_stream(chunks).values()
    assert streamed["name"] == "get_weather"
    assert streamed["id"]
    assert json.loads(streamed["arguments"]) == {"city": "Paris", "days": 3}
    assert finish_of(chunks) == ["tool_calls"]


def test_fakellm_overloaded_is_503(fake_sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        fake_sdk.chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "please fail"}]
        )
    assert info.value.status_code == 503
    assert "fakellm is overloaded" in info.value.message


# -- aimock ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aimock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("aimock-anthropic") / "fixtures.json"
    path.write_text(json.dumps(AIMOCK_FIXTURES))
    with start_aimock(path) as base:
        yield base


@pytest.fixture
def mock_sdk(aimock: str, start_gateway: GatewayFactory) -> Iterator[openai.OpenAI]:
    with sdk_for(start_gateway, aimock) as client:
        yield client


def test_aimock_chat_and_streamed_chat_with_usage(mock_sdk: openai.OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "hello aimock"}]
    reply = mock_sdk.chat.completions.create(model="claude", messages=messages)
    assert reply.choices[0].message.content == "Hello from aimock, in Anthropic's format."
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (11, 7)
    chunks = list(
        mock_sdk.chat.completions.create(
            model="claude",
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert text_of(chunks) == "Hello from aimock, in Anthropic's format."
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3
    assert finish_of(chunks) == ["stop"]
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (11, 7, 18)


@pytest.mark.parametrize("stream", [False, True])
def test_aimock_thinking_is_left_out(mock_sdk: openai.OpenAI, stream: bool) -> None:
    messages: Any = [{"role": "user", "content": "think first"}]
    if stream:
        chunks = list(
            mock_sdk.chat.completions.create(model="claude", messages=messages, stream=True)
        )
        assert text_of(chunks) == "The answer is 4."
    else:
        reply = mock_sdk.chat.completions.create(model="claude", messages=messages)
        assert reply.choices[0].message.content == "The answer is 4."


def test_aimock_tool_calls_streamed_and_round_trip(mock_sdk: openai.OpenAI) -> None:
    question: Any = {"role": "user", "content": "What is the weather in Paris?"}
    reply = mock_sdk.chat.completions.create(model="claude", messages=[question], tools=[WEATHER])
    (call,) = reply.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris", "days": 3}  # type: ignore[union-attr]
    assert reply.choices[0].finish_reason == "tool_calls"
    chunks = list(
        mock_sdk.chat.completions.create(
            model="claude", messages=[question], tools=[WEATHER], stream=True
        )
    )
    (streamed,) = tool_call_stream(chunks).values()
    assert streamed["name"] == "get_weather"
    assert json.loads(streamed["arguments"]) == {"city": "Paris", "days": 3}
    fragments = [
        tc.function.arguments
        for c in chunks
        if c.choices
        for tc in c.choices[0].delta.tool_calls or []
        if tc.function and tc.function.arguments
    ]
    assert len(fragments) > 1
    assert finish_of(chunks) == ["tool_calls"]
    follow = mock_sdk.chat.completions.create(
        model="claude",
        messages=[
            question,
            reply.choices[0].message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": "sunny, 24C"},
        ],
        tools=[WEATHER],
    )
    assert follow.choices[0].message.content == "It is sunny in Paris, enjoy."
