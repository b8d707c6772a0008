"""The official `openai` SDK -> the gateway -> the project's emulator speaking Gemini's wire format.

What arrived upstream is read back from the emulator's request log, so every test checks both
sides of the translation over real sockets.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from conftest import PROVIDER_ENV
from harness import EmulatorServer, GatewayServer, config_from_yaml

GEMINI_KEY = "gm-emulator-provider-key-0001"
CLIENT_KEY = "client-side-key-never-forwarded"
CHAT_MODEL = "gemini-2.0-flash"
EMBED_MODEL = "text-embedding-004"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
            "additionalProperties": False,
        },
    },
}
CLOCK = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}


def shared_gateway(
    tmp_path_factory: pytest.TempPathFactory, yaml_text: str
) -> Iterator[GatewayServer]:
    """One gateway for the whole module (starting one per test would dominate the run time)."""
    with pytest.MonkeyPatch.context() as env:
        for name in PROVIDER_ENV:
            env.delenv(name, raising=False)
        server = GatewayServer(config_from_yaml(tmp_path_factory.mktemp("gw"), yaml_text))
    yield server
    server.stop()


def gemini_yaml(base: str, key: str = GEMINI_KEY) -> str:
    return f"""
router: {{retries: 0}}  # error tests see each upstream failure as it is
models:
  - {{name: gem, provider: gemini, model: {CHAT_MODEL}, api_base: "{base}", api_key: {key}}}
  - {{name: gem-embed, provider: gemini, model: {EMBED_MODEL}, api_base: "{base}", api_key: {key}}}
"""


@pytest.fixture(scope="module")
def module_gateway(
    emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    yield from shared_gateway(tmp_path_factory, gemini_yaml(emulator.url))


@pytest.fixture
def gateway(module_gateway: GatewayServer, emu: EmulatorServer) -> GatewayServer:
    return module_gateway


@pytest.fixture
def client(gateway: GatewayServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=CLIENT_KEY, max_retries=0) as c:
        yield c


def upstream(emu: EmulatorServer, method: str) -> list[dict[str, Any]]:
    return [r for r in emu.requests() if r["path"].endswith(f":{method}")]


def model_stats(emu: EmulatorServer, model: str) -> dict[str, int]:
    entry = emu.stats()["providers"].get("gemini", {}).get(model, {})
    return {k: entry.get(k, 0) for k in ("prompt_tokens", "completion_tokens", "succeeded")}


def assert_key_in_header_only(sent: dict[str, Any]) -> None:
    headers = {k.lower(): v for k, v in sent["headers"].items()}
    assert headers["x-goog-api-key"] == GEMINI_KEY
    assert "key" not in sent["query"]
    assert GEMINI_KEY not in sent["path"]
    assert CLIENT_KEY not in json.dumps(sent)
    assert "authorization" not in headers


def test_chat_translates_the_conversation_and_the_answer(
    client: openai.OpenAI, emu: EmulatorServer
) -> None:
    before = model_stats(emu, CHAT_MODEL)
    result = client.chat.completions.create(
        model="gem",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hello there"},
            {"role": "assistant", "content": "Hi."},
            {"role": "developer", "content": "Answer in English."},
            {"role": "user", "content": "Tell me about Paris"},
            {"role": "user", "content": [{"type": "text", "text": "and Lyon"}]},
        ],
        max_tokens=50,
        temperature=0.3,
        stop=["\n\n"],
    )
    choice = result.choices[0]
    assert choice.message.role == "assistant"
    assert (choice.message.content or "").startswith(
        "Emulated reply to: Tell me about Paris and Lyon"
    )
    assert choice.finish_reason == "stop"
    assert result.model == CHAT_MODEL
    (sent,) = upstream(emu, "generateContent")
    assert sent["path"] == f"/v1beta/models/{CHAT_MODEL}:generateContent"
    assert_key_in_header_only(sent)
    body = sent["body"]
    assert body["systemInstruction"] == {
        "parts": [{"text": "You are terse."}, {"text": "Answer in English."}]
    }
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["contents"][2]["parts"] == [{"text": "Tell me about Paris"}, {"text": "and Lyon"}]
    assert body["generationConfig"] == {
        "maxOutputTokens": 50,
        "temperature": 0.3,
        "stopSequences": ["\n\n"],
    }
    after = model_stats(emu, CHAT_MODEL)
    assert result.usage is not None
    assert result.usage.prompt_tokens == after["prompt_tokens"] - before["prompt_tokens"]
    assert (
        result.usage.completion_tokens == after["completion_tokens"] - before["completion_tokens"]
    )
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens


def test_images_become_inline_data(client: openai.OpenAI, emu: EmulatorServer) -> None:
    pixel = base64.b64encode(b"\x89PNG fake").decode()
    client.chat.completions.create(
        model="gem",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{pixel}"}},
                ],
            }
        ],
    )
    (sent,) = upstream(emu, "generateContent")
    assert sent["body"]["contents"][0]["parts"][1] == {
        "inlineData": {"mimeType": "image/png", "data": pixel}
    }


def test_streamed_chat_relays_pieces_and_reports_the_upstream_usage(
    client: openai.OpenAI, emu: EmulatorServer
) -> None:
    before = model_stats(emu, CHAT_MODEL)
    stream = client.chat.completions.create(
        model="gem",
        messages=[{"role": "user", "content": "stream these words please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    after = model_stats(emu, CHAT_MODEL)
    content = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len(content) > 5  # one chunk per upstream piece, not one buffered blob
    text = "".join(c.choices[0].delta.content or "" for c in content)
    assert text.startswith("Emulated reply to: stream these words please")
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    assert len({(c.id, c.created, c.model) for c in chunks}) == 1
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage is not None
    assert after["succeeded"] == before["succeeded"] + 1
    assert usage.prompt_tokens == after["prompt_tokens"] - before["prompt_tokens"]
    assert usage.completion_tokens == after["completion_tokens"] - before["completion_tokens"]
    (sent,) = upstream(emu, "streamGenerateContent")
    assert sent["query"] == {"alt": "sse"}
    assert_key_in_header_only(sent)


def test_tool_calls_round_trip(client: openai.OpenAI, emu: EmulatorServer) -> None:
    question = {"role": "user", "content": "What is the weather in Paris?"}
    result = client.chat.completions.create(
        model="gem", messages=[question], tools=[WEATHER], tool_choice="auto"
    )
    choice = result.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.id.startswith("call_")
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "example", "days": 1}  # type: ignore[union-attr]
    (sent,) = upstream(emu, "generateContent")
    assert sent["body"]["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather for a city",
                    "parametersJsonSchema": WEATHER["function"]["parameters"],  # type: ignore[index]
                }
            ]
        }
    ]
    assert sent["body"]["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}

    emu.reset()
    follow = client.chat.completions.create(
        model="gem",
        messages=[
            question,
            choice.message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": "sunny, 24C"},
        ],
        tools=[WEATHER],
    )
    assert "sunny, 24C" in (follow.choices[0].message.content or "")
    assert follow.choices[0].finish_reason == "stop"
    (sent,) = upstream(emu, "generateContent")
    assert sent["body"]["contents"] == [
        {"role": "user", "parts": [{"text": "What is the weather in Paris?"}]},
        {
            "role": "model",
            "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "example", "days": 1}}}
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"result": "sunny, 24C"}}}
            ],
        },
    ]


def test_streamed_parallel_tool_calls(client: openai.OpenAI, emu: EmulatorServer) -> None:
    stream = client.chat.completions.create(
        model="gem",
        messages=[{"role": "user", "content": "weather and time [[parallel_tools]]"}],
        tools=[WEATHER, CLOCK],
        stream=True,
    )
    calls: dict[int, dict[str, str]] = {}
    finishes = []
    for chunk in stream:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                entry = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] += delta.id or ""
                entry["name"] += (delta.function and delta.function.name) or ""
                entry["arguments"] += (delta.function and delta.function.arguments) or ""
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    assert sorted(calls) == [0, 1]
    assert [calls[i]["name"] for i in (0, 1)] == ["get_weather", "get_time"]
    assert json.loads(calls[0]["arguments"]) == {"city": "example", "days": 1}
    assert json.loads(calls[1]["arguments"]) == {}
    assert all(c["id"].startswith("call_") for c in calls.values())
    assert finishes == ["tool_calls"]


def test_named_tool_choice_forces_that_function(client: openai.OpenAI, emu: EmulatorServer) -> None:
    result = client.chat.completions.create(
        model="gem",
        messages=[{"role": "user", "content": "What time is it?"}],
        tools=[WEATHER, CLOCK],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    (call,) = result.choices[0].message.tool_calls or []
    assert call.function.name == "get_time"  # type: ignore[union-attr]
    (sent,) = upstream(emu, "generateContent")
    assert sent["body"]["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}
    }


def as_floats(embedding: object) -> list[float]:
    if isinstance(embedding, str):  # the SDK hands base64 through when the caller asked for it
        raw = base64.b64decode(embedding)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    assert isinstance(embedding, list)
    return embedding


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_embeddings(client: openai.OpenAI, emu: EmulatorServer, encoding: str) -> None:
    result = client.embeddings.create(
        model="gem-embed",
        input=["hello world", "bye"],
        dimensions=3,
        encoding_format=encoding,  # type: ignore[arg-type]
    )
    assert [d.index for d in result.data] == [0, 1]
    vectors = [as_floats(d.embedding) for d in result.data]
    assert all(len(v) == 3 for v in vectors)
    assert all(isinstance(d.embedding, str) for d in result.data) is (encoding == "base64")
    assert result.model == EMBED_MODEL
    (sent,) = upstream(emu, "batchEmbedContents")
    assert sent["path"] == f"/v1beta/models/{EMBED_MODEL}:batchEmbedContents"
    assert_key_in_header_only(sent)
    assert sent["body"] == {
        "requests": [
            {
                "model": f"models/{EMBED_MODEL}",
                "content": {"parts": [{"text": text}]},
                "outputDimensionality": 3,
            }
            for text in ("hello world", "bye")
        ]
    }


def test_base64_embeddings_are_the_float_vectors_as_float32(gateway: GatewayServer) -> None:
    with httpx.Client(base_url=gateway.url, timeout=30) as http:
        body = {"model": "gem-embed", "input": "hello world"}
        floats = http.post("/v1/embeddings", json=body).json()["data"][0]["embedding"]
        packed = http.post("/v1/embeddings", json={**body, "encoding_format": "base64"}).json()
    raw = base64.b64decode(packed["data"][0]["embedding"])
    decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert decoded == pytest.approx(floats, rel=1e-6)
    assert len(floats) == 8  # the emulator's default dimension


def test_many_embedding_inputs_are_batched_in_order(
    client: openai.OpenAI, emu: EmulatorServer
) -> None:
    words = [f"word{i}" for i in range(150)]
    result = client.embeddings.create(model="gem-embed", input=words)
    assert [d.index for d in result.data] == list(range(150))
    batches = upstream(emu, "batchEmbedContents")
    assert sorted(len(b["body"]["requests"]) for b in batches) == [50, 100]
    single = client.embeddings.create(model="gem-embed", input="word120")
    assert result.data[120].embedding == single.data[0].embedding


def test_token_id_embedding_input_is_a_clear_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="gem-embed", input=[[1, 2, 3]])
    assert "text only" in str(info.value)
