"""The official `openai` SDK -> the gateway -> the project's emulator, Anthropic Messages format.

Each test checks what the client gets and what arrived upstream (the emulator's request log):
system prompt, turns, max_tokens, tools, the provider headers, and never the client's key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from ai_gateway.model_registry import load_default_registry
from conftest import EMULATOR_KEY, GatewayFactory
from harness import EmulatorServer, GatewayServer

MASTER = "gw-master-key-ANTHROPIC-CANARY-77"
CLAUDE = "claude-sonnet-4-20250514"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
}
CLOCK = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}


def anthropic_yaml(emu: EmulatorServer) -> str:
    """`claude`: a model the registry knows; `claude-new`: one it does not."""
    return f"""
router: {{retries: 0}}  # error tests see each upstream failure as it is
models:
  - name: claude
    provider: anthropic
    model: {CLAUDE}
    api_base: {emu.url}
    api_key: {EMULATOR_KEY}
  - name: claude-new
    provider: anthropic
    model: claude-unlisted-9
    api_base: {emu.url}
    api_key: {EMULATOR_KEY}
"""


def messages_calls(emu: EmulatorServer) -> list[dict[str, Any]]:
    return [r for r in emu.requests() if r["path"] == "/v1/messages"]


def model_stats(emu: EmulatorServer, model: str = CLAUDE) -> dict[str, Any]:
    return emu.stats()["providers"]["anthropic"][model]  # type: ignore[no-any-return]


def tool_call_stream(chunks: list[Any]) -> dict[int, dict[str, Any]]:
    """Tool calls reassembled from stream chunks, by index."""
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            slot = calls.setdefault(tc.index, {"id": None, "name": None, "arguments": ""})
            slot["id"] = tc.id or slot["id"]
            if tc.function:
                slot["name"] = tc.function.name or slot["name"]
                slot["arguments"] += tc.function.arguments or ""
    return calls


@pytest.fixture
def gw(
    emu: EmulatorServer, start_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> GatewayServer:
    monkeypatch.setenv("AI_GATEWAY_MASTER_KEY", MASTER)
    emu.http.delete("/_emulator/stats").raise_for_status()
    return start_gateway(anthropic_yaml(emu))


@pytest.fixture
def sdk(gw: GatewayServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=MASTER, max_retries=0) as client:
        yield client


def test_chat(sdk: openai.OpenAI, emu: EmulatorServer) -> None:
    reply = sdk.chat.completions.create(
        model="claude",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hello there"},
            {"role": "assistant", "content": "Hi!"},
            {"role": "developer", "content": "Answer in one line."},
            {"role": "user", "content": "What is new in Lisbon?"},
        ],
        temperature=0.3,
        stop=["STOP"],
        user="user-1234",
    )
    assert reply.id.startswith("msg_")
    assert reply.model == CLAUDE
    assert "What is new in Lisbon?" in (reply.choices[0].message.content or "")
    assert reply.choices[0].finish_reason == "stop"
    stats = model_stats(emu)
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (
        stats["prompt_tokens"],
        stats["completion_tokens"],
    )
    (sent,) = messages_calls(emu)
    headers = {k.lower(): v for k, v in sent["headers"].items()}
    assert headers["x-api-key"] == EMULATOR_KEY
    assert headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in headers
    assert MASTER not in json.dumps(sent)
    body = sent["body"]
    assert body["model"] == CLAUDE
    assert body["system"] == [
        {"type": "text", "text": "You are terse."},
        {"type": "text", "text": "Answer in one line."},
    ]
    assert [(m["role"], m["content"][0]["text"]) for m in body["messages"]] == [
        ("user", "Hello there"),
        ("assistant", "Hi!"),
        ("user", "What is new in Lisbon?"),
    ]
    info = load_default_registry().get("anthropic", CLAUDE)
    assert info is not None
    assert body["max_tokens"] == info.max_output_tokens
    assert body["temperature"] == 0.3
    assert body["stop_sequences"] == ["STOP"]
    assert body["metadata"] == {"user_id": "user-1234"}


def test_max_tokens_from_the_request_or_the_default(
    sdk: openai.OpenAI, emu: EmulatorServer
) -> None:
    sdk.chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "hi"}], max_completion_tokens=33
    )
    sdk.chat.completions.create(model="claude-new", messages=[{"role": "user", "content": "hi"}])
    first, second = messages_calls(emu)
    assert first["body"]["max_tokens"] == 33
    assert second["body"]["max_tokens"] == 4096  # not in the registry: the documented default


def test_length_finish_reason(sdk: openai.OpenAI) -> None:
    reply = sdk.chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "tell me a story"}], max_tokens=3
    )
    assert reply.choices[0].finish_reason == "length"


@pytest.mark.parametrize("include_usage", [True, False])
def test_streamed_chat(sdk: openai.OpenAI, emu: EmulatorServer, include_usage: bool) -> None:
    messages: Any = [{"role": "user", "content": "stream these words please"}]
    whole = sdk.chat.completions.create(model="claude", messages=messages)
    emu.http.delete("/_emulator/stats").raise_for_status()
    options: Any = {"stream_options": {"include_usage": True}} if include_usage else {}
    chunks = list(
        sdk.chat.completions.create(model="claude", messages=messages, stream=True, **options)
    )
    assert len({(c.id, c.created, c.model) for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert [f for f in finishes if f] == ["stop"]
    usage_chunks = [c for c in chunks if c.usage is not None]
    if not include_usage:
        assert usage_chunks == []
        return
    assert usage_chunks == [chunks[-1]]
    assert chunks[-1].choices == []
    stats = model_stats(emu)
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        stats["prompt_tokens"],
        stats["completion_tokens"],
    )
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert (usage.model_extra or {})["cache_read_input_tokens"] == 0
    (_, sent) = messages_calls(emu)
    assert sent["body"]["stream"] is True


def test_tool_call_round_trip(sdk: openai.OpenAI, emu: EmulatorServer) -> None:
    question: Any = {"role": "user", "content": "What is the weather in Paris?"}
    reply = sdk.chat.completions.create(
        model="claude", messages=[question], tools=[WEATHER], tool_choice="auto"
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.type == "function"
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    arguments = json.loads(call.function.arguments)  # type: ignore[union-attr]
    assert set(arguments) == {"city", "days"}
    follow = sdk.chat.completions.create(
        model="claude",
        messages=[
            question,
            choice.message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": "sunny, 24C"},
        ],
        tools=[WEATHER],
    )
    assert "sunny, 24C" in (follow.choices[0].message.content or "")
    assert follow.choices[0].finish_reason == "stop"
    first, second = messages_calls(emu)
    assert first["body"]["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": WEATHER["function"]["parameters"],  # type: ignore[index]
        }
    ]
    assert first["body"]["tool_choice"] == {"type": "auto"}
    assert second["body"]["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": call.id, "name": "get_weather", "input": arguments}
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 24C"}],
        },
    ]


def test_streamed_tool_calls_are_reassembled(sdk: openai.OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "Weather and time please [[parallel_tools]]"}]
    whole = sdk.chat.completions.create(model="claude", messages=messages, tools=[WEATHER, CLOCK])
    expected = [
        (c.id, c.function.name, json.loads(c.function.arguments))  # type: ignore[union-attr]
        for c in whole.choices[0].message.tool_calls or []
    ]
    assert [name for _, name, _ in expected] == ["get_weather", "get_time"]
    chunks = list(
        sdk.chat.completions.create(
            model="claude", messages=messages, tools=[WEATHER, CLOCK], stream=True
        )
    )
    calls = tool_call_stream(chunks)
    assert sorted(calls) == [0, 1]
    streamed = [(c["id"], c["name"], json.loads(c["arguments"])) for c in calls.values()]
    assert streamed == expected
    fragments = [
        tc.function.arguments
        for c in chunks
        if c.choices
        for tc in c.choices[0].delta.tool_calls or []
        if tc.index == 0 and tc.function and tc.function.arguments
    ]
    assert len(fragments) > 1  # the arguments really arrive in pieces
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert [f for f in finishes if f] == ["tool_calls"]


def test_parallel_tool_calls_false(sdk: openai.OpenAI, emu: EmulatorServer) -> None:
    reply = sdk.chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "Weather and time [[parallel_tools]]"}],
        tools=[WEATHER, CLOCK],
        parallel_tool_calls=False,
    )
    assert len(reply.choices[0].message.tool_calls or []) == 1
    (sent,) = messages_calls(emu)
    assert sent["body"]["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}


@pytest.mark.parametrize("stream", [False, True])
def test_response_format_json_schema(sdk: openai.OpenAI, emu: EmulatorServer, stream: bool) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
    }
    fmt: Any = {"type": "json_schema", "json_schema": {"name": "city_facts", "schema": schema}}
    messages: Any = [{"role": "user", "content": "Facts about Porto"}]
    if stream:
        chunks = list(
            sdk.chat.completions.create(
                model="claude", messages=messages, response_format=fmt, stream=True
            )
        )
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert all(not c.choices[0].delta.tool_calls for c in chunks if c.choices)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
    else:
        reply = sdk.chat.completions.create(model="claude", messages=messages, response_format=fmt)
        content = reply.choices[0].message.content or ""
        assert reply.choices[0].message.tool_calls is None
        finish = reply.choices[0].finish_reason
    assert set(json.loads(content)) == {"city", "population"}
    assert finish == "stop"
    (sent,) = messages_calls(emu)
    assert sent["body"]["tool_choice"] == {"type": "tool", "name": "json_response"}
    assert sent["body"]["tools"][0]["input_schema"] == schema


def test_images_reach_the_upstream_as_image_blocks(sdk: openai.OpenAI, emu: EmulatorServer) -> None:
    sdk.chat.completions.create(
        model="claude",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe these"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                    },
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                ],
            }
        ],
    )
    (sent,) = messages_calls(emu)
    assert [b["source"] for b in sent["body"]["messages"][0]["content"][1:]] == [
        {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        {"type": "url", "url": "https://example.com/cat.jpg"},
    ]
