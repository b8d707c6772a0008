"""Anthropic Messages wire format over a real socket: JSON, SSE events, tools, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .support import ANTHROPIC_HEADERS, Emulator, parse_sse

MODEL = "claude-sonnet-4-20250514"
WEATHER = {
    "name": "get_weather",
    "description": "Current weather",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
        "required": ["city", "unit"],
    },
}
CLOCK = {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}


def request(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 100,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": "Tell me about the weather in Paris"}],
    }
    return {**body, **overrides}


async def test_message_object(emulator: Emulator) -> None:
    status, body, resp = await emulator.post("/v1/messages", request(), ANTHROPIC_HEADERS)
    assert status == 200
    assert resp.headers["request-id"].startswith("req_")
    assert body["id"].startswith("msg_")
    assert (body["type"], body["role"], body["model"]) == ("message", "assistant", MODEL)
    assert body["content"] == [
        {
            "type": "text",
            "text": "Emulated reply to: Tell me about the weather in Paris "
            "lorem ipsum dolor sit amet consectetur adipiscing elit",
        }
    ]
    assert (body["stop_reason"], body["stop_sequence"]) == ("end_turn", None)
    assert body["usage"] == {
        "input_tokens": (3 + 3) + (3 + 7),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 18,
    }


async def test_stream_event_sequence_and_usage(emulator: Emulator) -> None:
    status, text, resp = await emulator.post(
        "/v1/messages", request(stream=True), ANTHROPIC_HEADERS
    )
    assert status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    events = parse_sse(text)
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    assert all(name == data["type"] for name, data in events)
    start = events[0][1]["message"]
    assert (start["content"], start["stop_reason"]) == ([], None)
    assert start["usage"]["input_tokens"] == 16
    deltas = [d["delta"]["text"] for n, d in events if n == "content_block_delta"]
    _, plain, _ = await emulator.post("/v1/messages", request(), ANTHROPIC_HEADERS)
    assert "".join(deltas) == plain["content"][0]["text"]
    final = events[-2][1]
    assert final["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert final["usage"]["output_tokens"] == plain["usage"]["output_tokens"]


async def test_max_tokens_and_stop_sequences(emulator: Emulator) -> None:
    _, body, _ = await emulator.post("/v1/messages", request(max_tokens=2), ANTHROPIC_HEADERS)
    assert (body["stop_reason"], body["usage"]["output_tokens"]) == ("max_tokens", 2)
    _, body, _ = await emulator.post(
        "/v1/messages", request(stop_sequences=["weather"]), ANTHROPIC_HEADERS
    )
    assert body["content"][0]["text"] == "Emulated reply to: Tell me about the "
    assert (body["stop_reason"], body["stop_sequence"]) == ("stop_sequence", "weather")


async def test_tool_use_and_streamed_input_json(emulator: Emulator) -> None:
    _, body, _ = await emulator.post("/v1/messages", request(tools=[WEATHER]), ANTHROPIC_HEADERS)
    assert body["stop_reason"] == "tool_use"
    (block,) = body["content"]
    assert block["type"] == "tool_use"
    assert block["id"].startswith("toolu_")
    assert (block["name"], block["input"]) == ("get_weather", {"city": "example", "unit": "c"})
    _, text, _ = await emulator.post(
        "/v1/messages", request(tools=[WEATHER], stream=True), ANTHROPIC_HEADERS
    )
    events = parse_sse(text)
    start = next(d for n, d in events if n == "content_block_start")
    assert start["content_block"] == {
        "type": "tool_use",
        "id": start["content_block"]["id"],
        "name": "get_weather",
        "input": {},
    }
    partial = [
        d["delta"]["partial_json"]
        for n, d in events
        if n == "content_block_delta" and d["delta"]["type"] == "input_json_delta"
    ]
    assert len(partial) > 2
    assert json.loads("".join(partial)) == block["input"]
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


async def test_parallel_tools_choice_and_tool_result_reply(emulator: Emulator) -> None:
    body = request(tools=[WEATHER, CLOCK])
    body["messages"][0]["content"] = "weather and time [[parallel_tools]]"
    _, answer, _ = await emulator.post("/v1/messages", body, ANTHROPIC_HEADERS)
    assert [b["name"] for b in answer["content"]] == ["get_weather", "get_time"]
    body["tool_choice"] = {"type": "tool", "name": "get_time", "disable_parallel_tool_use": True}
    _, forced, _ = await emulator.post("/v1/messages", body, ANTHROPIC_HEADERS)
    assert [b["name"] for b in forced["content"]] == ["get_time"]
    body["tool_choice"] = {"type": "none"}
    _, none, _ = await emulator.post("/v1/messages", body, ANTHROPIC_HEADERS)
    assert none["content"][0]["type"] == "text"
    body["tool_choice"] = {"type": "auto"}
    body["messages"] += [
        {"role": "assistant", "content": answer["content"]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": answer["content"][0]["id"],
                    "content": "21C",
                },
                {
                    "type": "tool_result",
                    "tool_use_id": answer["content"][1]["id"],
                    "content": [{"type": "text", "text": "noon"}],
                },
            ],
        },
    ]
    _, reply, _ = await emulator.post("/v1/messages", body, ANTHROPIC_HEADERS)
    assert reply["stop_reason"] == "end_turn"
    assert reply["content"][0]["text"].startswith("Emulated reply to tool result: 21C noon")


async def test_images_consecutive_turns_and_prefill_are_accepted(emulator: Emulator) -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA"}}
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "look"}, image]},
        {"role": "user", "content": "closely"},
        {"role": "assistant", "content": "It is"},
    ]
    status, body, _ = await emulator.post(
        "/v1/messages", request(system=None, messages=messages), ANTHROPIC_HEADERS
    )
    assert status == 200
    assert body["usage"]["input_tokens"] == (3 + 1 + 85) + (3 + 1) + (3 + 2)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"max_tokens": None}, "max_tokens: Field required"),
        ({"messages": []}, "at least one message"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": ""}]}, "non-empty content"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]}, "non-empty"),
        ({"messages": [{"role": "user", "content": [{"type": "video"}]}]}, "Input tag 'video'"),
        ({"tool_choice": {"type": "any"}}, "tool_choice may only be specified"),
        (
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "assistant", "content": "b "},
                ]
            },
            "trailing whitespace",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {
                        "role": "assistant",
                        "content": [
                            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}
                        ],
                    },
                    {"role": "user", "content": "no result"},
                ]
            },
            "`tool_use` ids were found without `tool_result` blocks immediately after: toolu_1",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": "toolu_x", "content": "r"}
                        ],
                    }
                ]
            },
            "unexpected `tool_use_id`",
        ),
    ],
)
async def test_invalid_requests(
    emulator: Emulator, overrides: dict[str, Any], fragment: str
) -> None:
    body = {k: v for k, v in request(**overrides).items() if v is not None}
    status, answer, resp = await emulator.post("/v1/messages", body, ANTHROPIC_HEADERS)
    assert status == 400
    assert answer["type"] == "error"
    assert answer["error"]["type"] == "invalid_request_error"
    assert fragment in answer["error"]["message"]
    assert answer["request_id"] == resp.headers["request-id"]


async def test_auth_version_and_model_errors(emulator: Emulator) -> None:
    status, answer, _ = await emulator.post("/v1/messages", request())
    assert (status, answer["error"]["type"]) == (401, "authentication_error")
    status, answer, _ = await emulator.post("/v1/messages", request(), {"x-api-key": "sk-ant-test"})
    assert (status, answer["error"]["type"]) == (400, "invalid_request_error")
    assert "anthropic-version" in answer["error"]["message"]
    status, answer, _ = await emulator.post(
        "/v1/messages", request(model="gpt-4o"), ANTHROPIC_HEADERS
    )
    assert (status, answer["error"]["type"]) == (404, "not_found_error")
