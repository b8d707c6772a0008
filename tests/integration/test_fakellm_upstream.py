"""Against an OpenAI-compatible upstream that is not the project's own: fakellm (PyPI), run as
its own process. The official SDK talks to the gateway; the gateway talks to fakellm."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest

from conftest import GatewayFactory
from harness import GatewayServer, start_fakellm

RULES = """
version: 1
defaults:
  fallback: deterministic_echo
rules:
  - name: weather_tool
    when:
      tools_include: get_weather
      turn: 1
    respond:
      tool_calls:
        - name: get_weather
          arguments: {city: "Paris", unit: "celsius"}
  - name: greeting
    when:
      messages_contain: "hello gateway"
    respond:
      content: "Hello from fakellm, through the gateway."
  - name: overloaded
    when:
      messages_contain: "please fail"
    respond:
      status: 503
      error: "fakellm is overloaded"
"""

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.fixture(scope="module")
def fakellm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with start_fakellm(tmp_path_factory.mktemp("fakellm"), RULES) as url:
        yield url


@pytest.fixture
def gw(fakellm: str, start_gateway: GatewayFactory) -> GatewayServer:
    httpx.post(f"{fakellm}/_fakellm/reset")
    return start_gateway(
        "models:\n  - {name: gpt-4o, provider: openai, model: gpt-4o, "
        f"api_base: '{fakellm}/v1', api_key: sk-fakellm-unused}}\n"
    )


@pytest.fixture
def sdk(gw: GatewayServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0) as client:
        yield client


def test_chat(sdk: openai.OpenAI) -> None:
    reply = sdk.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hello gateway"}]
    )
    assert reply.choices[0].message.content == "Hello from fakellm, through the gateway."
    assert reply.choices[0].finish_reason == "stop"


def test_streamed_chat(sdk: openai.OpenAI) -> None:
    chunks = list(
        sdk.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hello gateway"}], stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from fakellm, through the gateway."
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_tool_call_and_streamed_tool_call(sdk: openai.OpenAI) -> None:
    reply = sdk.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "weather?"}],
        tools=TOOLS,  # type: ignore[arg-type]
        extra_headers={"X-Request-Id": "t1"},
    )
    call = reply.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "celsius"}  # type: ignore[union-attr]
    assert reply.choices[0].finish_reason == "tool_calls"
    stream = sdk.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "weather again?"}],
        tools=TOOLS,  # type: ignore[arg-type]
        stream=True,
    )
    args = ""
    for chunk in stream:
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            args += tc.function.arguments or "" if tc.function else ""
    assert json.loads(args) == {"city": "Paris", "unit": "celsius"}


def test_upstream_error_is_mapped(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        sdk.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "please fail"}]
        )
    assert info.value.status_code == 503
    assert "overloaded" in info.value.message
