"""OpenAI wire format over a real socket: chat (JSON and SSE), tools, embeddings, errors."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import pytest

from .support import OPENAI_HEADERS, Emulator, parse_sse

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
TIME_TOOL = {"type": "function", "function": {"name": "get_time", "parameters": {}}}


def chat(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Tell me about the weather in Paris"},
        ],
    }
    return {**body, **overrides}


async def test_chat_completion_object(emulator: Emulator) -> None:
    status, body, resp = await emulator.post("/v1/chat/completions", chat(), OPENAI_HEADERS)
    assert status == 200
    assert resp.headers["x-request-id"].startswith("req_")
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "gpt-4o-mini"
    assert isinstance(body["created"], int)
    assert body["system_fingerprint"].startswith("fp_")
    (choice,) = body["choices"]
    assert choice["index"] == 0
    assert choice["finish_reason"] == "stop"
    assert choice["logprobs"] is None
    message = choice["message"]
    assert message["role"] == "assistant"
    assert message["refusal"] is None
    assert "tool_calls" not in message
    assert message["content"] == (
        "Emulated reply to: Tell me about the weather in Paris "
        "lorem ipsum dolor sit amet consectetur adipiscing elit"
    )
    # (3 + 3 words) + (3 + 7 words) prompt; 3 + 7 + 8 completion words
    usage = body["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (16, 18)
    assert usage["total_tokens"] == 34


async def test_stream_chunks_in_order_with_usage(emulator: Emulator) -> None:
    body = chat(stream=True, stream_options={"include_usage": True})
    status, text, resp = await emulator.post("/v1/chat/completions", body, OPENAI_HEADERS)
    assert status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    events = [data for _, data in parse_sse(text)]
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    content = [c["choices"][0]["delta"].get("content") for c in chunks[1:-2]]
    assert len(content) == 18
    assert chunks[-2]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == []
    _, plain, _ = await emulator.post("/v1/chat/completions", chat(), OPENAI_HEADERS)
    assert "".join(content) == plain["choices"][0]["message"]["content"]
    assert chunks[-1]["usage"] == plain["usage"]


async def test_stream_without_include_usage_has_no_usage_field(emulator: Emulator) -> None:
    _, text, _ = await emulator.post("/v1/chat/completions", chat(stream=True), OPENAI_HEADERS)
    chunks = [data for _, data in parse_sse(text)][:-1]
    assert all("usage" not in c and c["choices"] for c in chunks)


async def test_n_max_tokens_and_stop(emulator: Emulator) -> None:
    _, body, _ = await emulator.post(
        "/v1/chat/completions", chat(n=2, max_tokens=5), OPENAI_HEADERS
    )
    assert [c["index"] for c in body["choices"]] == [0, 1]
    assert {c["finish_reason"] for c in body["choices"]} == {"length"}
    assert body["usage"]["completion_tokens"] == 10
    _, body, _ = await emulator.post(
        "/v1/chat/completions", chat(max_completion_tokens=50, stop=["Paris"]), OPENAI_HEADERS
    )
    assert (
        body["choices"][0]["message"]["content"]
        == "Emulated reply to: Tell me about the weather in "
    )
    assert body["choices"][0]["finish_reason"] == "stop"


async def test_streamed_n_choices_are_interleaved(emulator: Emulator) -> None:
    _, text, _ = await emulator.post(
        "/v1/chat/completions", chat(n=2, stream=True, max_tokens=2), OPENAI_HEADERS
    )
    indexes = [d["choices"][0]["index"] for _, d in parse_sse(text) if d != "[DONE]"]
    assert indexes == [0, 1, 0, 1, 0, 1, 0, 1]


async def test_tool_call_then_reply_to_tool_result(emulator: Emulator) -> None:
    _, body, _ = await emulator.post(
        "/v1/chat/completions", chat(tools=[WEATHER_TOOL]), OPENAI_HEADERS
    )
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function"
    assert call["id"].startswith("call_")
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "example"}
    followup = chat(tools=[WEATHER_TOOL])
    followup["messages"] += [
        choice["message"],
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny, 21C"},
    ]
    _, body, _ = await emulator.post("/v1/chat/completions", followup, OPENAI_HEADERS)
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["choices"][0]["message"]["content"].startswith(
        "Emulated reply to tool result: sunny, 21C"
    )


async def test_streamed_parallel_tool_calls_split_arguments(emulator: Emulator) -> None:
    body = chat(tools=[WEATHER_TOOL, TIME_TOOL], stream=True)
    body["messages"][-1]["content"] = "weather and time [[parallel_tools]]"
    _, text, _ = await emulator.post("/v1/chat/completions", body, OPENAI_HEADERS)
    chunks = [d for _, d in parse_sse(text) if d != "[DONE]"]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    calls: dict[int, dict[str, str]] = {}
    fragments = 0
    for chunk in chunks:
        for call in chunk["choices"][0]["delta"].get("tool_calls", []):
            entry = calls.setdefault(call["index"], {"id": "", "name": "", "arguments": ""})
            entry["id"] += call.get("id", "")
            entry["name"] += call.get("function", {}).get("name", "")
            entry["arguments"] += call.get("function", {}).get("arguments", "")
            fragments += bool(call.get("function", {}).get("arguments"))
    assert [calls[i]["name"] for i in sorted(calls)] == ["get_weather", "get_time"]
    assert json.loads(calls[0]["arguments"]) == {"city": "example"}
    assert json.loads(calls[1]["arguments"]) == {}
    assert fragments > 2
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_forced_tool_choice_finishes_with_stop_like_openai(emulator: Emulator) -> None:
    forced = {"type": "function", "function": {"name": "get_time"}}
    _, body, _ = await emulator.post(
        "/v1/chat/completions",
        chat(tools=[WEATHER_TOOL, TIME_TOOL], tool_choice=forced),
        OPENAI_HEADERS,
    )
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_time"
    assert body["choices"][0]["finish_reason"] == "stop"
    _, body, _ = await emulator.post(
        "/v1/chat/completions", chat(tools=[WEATHER_TOOL], tool_choice="none"), OPENAI_HEADERS
    )
    assert body["choices"][0]["message"]["content"].startswith("Emulated reply")


async def test_response_formats_produce_json(emulator: Emulator) -> None:
    body = chat(response_format={"type": "json_object"})
    body["messages"][-1]["content"] = "Answer in JSON"
    _, answer, _ = await emulator.post("/v1/chat/completions", body, OPENAI_HEADERS)
    assert json.loads(answer["choices"][0]["message"]["content"])["reply"].startswith("Emulated")
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "temp": {"type": "number"}},
        "required": ["city", "temp"],
        "additionalProperties": False,
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "w", "schema": schema, "strict": True}}
    _, answer, _ = await emulator.post(
        "/v1/chat/completions", chat(response_format=fmt), OPENAI_HEADERS
    )
    assert json.loads(answer["choices"][0]["message"]["content"]) == {
        "city": "example",
        "temp": 1.5,
    }


async def test_images_are_accepted_and_counted(emulator: Emulator) -> None:
    content = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": content}]}
    _, answer, _ = await emulator.post("/v1/chat/completions", body, OPENAI_HEADERS)
    assert answer["usage"]["prompt_tokens"] == 3 + 3 + 85


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ({"model": "gpt-4o"}, "messages", "Missing required parameter"),
        (chat(messages=[{"role": "wizard", "content": "x"}]), "messages[0].role", "'wizard'"),
        (chat(response_format={"type": "json_object"}), "messages", "word 'json'"),
        (chat(stream_options={"include_usage": True}), "stream_options", "only allowed"),
        (chat(tool_choice="auto"), "tool_choice", "only allowed when 'tools'"),
        (chat(stop=["a", "b", "c", "d", "e"]), "stop", "maximum length 4"),
        (
            chat(messages=[{"role": "tool", "tool_call_id": "call_1", "content": "x"}]),
            "messages[0].role",
            "preceeding message with 'tool_calls'",
        ),
    ],
)
async def test_invalid_requests(
    emulator: Emulator, body: dict[str, Any], param: str, fragment: str
) -> None:
    status, answer, _ = await emulator.post("/v1/chat/completions", body, OPENAI_HEADERS)
    assert status == 400
    error = answer["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert fragment in error["message"]


async def test_unanswered_tool_calls_are_rejected(emulator: Emulator) -> None:
    call = {"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    body = chat()
    body["messages"] += [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "user", "content": "and?"},
    ]
    status, answer, _ = await emulator.post("/v1/chat/completions", body, OPENAI_HEADERS)
    assert status == 400
    assert "call_9" in answer["error"]["message"]


async def test_auth_and_unknown_model(emulator: Emulator) -> None:
    status, answer, _ = await emulator.post("/v1/chat/completions", chat())
    assert status == 401
    assert answer["error"]["type"] == "invalid_request_error"
    status, answer, _ = await emulator.post(
        "/v1/chat/completions", chat(), {"Authorization": "Basic abc"}
    )
    assert (status, answer["error"]["code"]) == (401, "invalid_api_key")
    status, answer, _ = await emulator.post(
        "/v1/chat/completions", chat(model="no-such-model"), OPENAI_HEADERS
    )
    assert (status, answer["error"]["code"]) == (404, "model_not_found")


async def test_configured_keys_are_enforced(start_emulator: Any) -> None:
    emulator = await start_emulator(api_keys=frozenset({"sk-good"}))
    ok = {"Authorization": "Bearer sk-good"}
    assert (await emulator.post("/v1/chat/completions", chat(), ok))[0] == 200
    status, answer, _ = await emulator.post("/v1/chat/completions", chat(), OPENAI_HEADERS)
    assert (status, answer["error"]["code"]) == (401, "invalid_api_key")
    assert "sk-test" not in json.dumps(answer)


async def test_embeddings_float_base64_tokens_and_dimensions(emulator: Emulator) -> None:
    body = {"model": "text-embedding-3-small", "input": ["hello world", "bye"]}
    status, answer, _ = await emulator.post("/v1/embeddings", body, OPENAI_HEADERS)
    assert status == 200
    assert answer["object"] == "list"
    assert [d["index"] for d in answer["data"]] == [0, 1]
    assert {d["object"] for d in answer["data"]} == {"embedding"}
    assert len(answer["data"][0]["embedding"]) == 8
    assert answer["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    body64 = {**body, "encoding_format": "base64", "dimensions": 4}
    _, encoded, _ = await emulator.post("/v1/embeddings", body64, OPENAI_HEADERS)
    raw = base64.b64decode(encoded["data"][0]["embedding"])
    assert len(raw) == 16
    _, floats4, _ = await emulator.post("/v1/embeddings", {**body, "dimensions": 4}, OPENAI_HEADERS)
    assert list(struct.unpack("<4f", raw)) == floats4["data"][0]["embedding"]
    tokens = {"model": "text-embedding-3-small", "input": [[1, 2, 3], [4]]}
    _, answer, _ = await emulator.post("/v1/embeddings", tokens, OPENAI_HEADERS)
    assert answer["usage"]["prompt_tokens"] == 4
    ada = {"model": "text-embedding-ada-002", "input": "x", "dimensions": 4}
    status, answer, _ = await emulator.post("/v1/embeddings", ada, OPENAI_HEADERS)
    assert (status, answer["error"]["param"]) == (400, "dimensions")
    status, _, _ = await emulator.post(
        "/v1/embeddings", {"model": "text-embedding-3-small", "input": ""}, OPENAI_HEADERS
    )
    assert status == 400


async def test_models_listing(emulator: Emulator) -> None:
    status, answer = await emulator.get("/v1/models", OPENAI_HEADERS)
    assert status == 200
    assert answer["object"] == "list"
    assert "gpt-4o" in {m["id"] for m in answer["data"]}
    status, answer = await emulator.get("/v1/models/gpt-4o-mini", OPENAI_HEADERS)
    assert (status, answer["object"], answer["id"]) == (200, "model", "gpt-4o-mini")
    status, answer = await emulator.get("/v1/models/nope", OPENAI_HEADERS)
    assert (status, answer["error"]["code"]) == (404, "model_not_found")
    assert (await emulator.get("/v1/models"))[0] == 401
