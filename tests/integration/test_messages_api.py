"""The official `anthropic` SDK -> the gateway's Messages API -> the emulator, as Anthropic,
OpenAI and Gemini deployments: messages, streamed messages (text, tool use, thinking), a tool
result round trip, token counting, a usage record with its cost per request, and the Anthropic
request reaching an Anthropic deployment exactly as the client sent it.

Errors (authentication, validation, rate limits, providers that cannot take a field) are in
test_messages_errors.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from jsonschema import Draft202012Validator
from pydantic import TypeAdapter

from conftest import EMULATOR_KEY, PROVIDER_ENV
from harness import EmulatorServer, GatewayServer, config_from_yaml, dep

pytestmark = pytest.mark.integration

CLAUDE = "claude-sonnet-4-20250514"
MODELS = ("claude", "gpt", "gem")
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
EVENTS = TypeAdapter(RawMessageStreamEvent)
EPHEMERAL = {"type": "ephemeral"}
PDF = "application/pdf"


def three_providers(emu: EmulatorServer) -> str:
    """`claude`, `gpt` and `gem`: one deployment of each provider, all on the emulator."""
    return f"""
models:
  - name: claude
    deployments: [{dep(emu, CLAUDE, provider="anthropic", api_base=emu.url)}]
  - name: gpt
    deployments: [{dep(emu, "gpt-4o-mini")}]
  - name: gem
    deployments: [{dep(emu, "gemini-2.0-flash", provider="gemini", api_base=emu.url)}]
"""


def messages_yaml(emu: EmulatorServer, data_dir: Path) -> str:
    return f'gateway: {{data_dir: "{data_dir}"}}\nrouter: {{retries: 0}}\n' + three_providers(emu)


@pytest.fixture(scope="module")
def module_emu() -> Iterator[EmulatorServer]:
    server = EmulatorServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gw(
    module_emu: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    folder = tmp_path_factory.mktemp("gw")
    with pytest.MonkeyPatch.context() as env:
        for name in PROVIDER_ENV:
            env.delenv(name, raising=False)
        env.setenv("AI_GATEWAY_DATA_DIR", str(folder / "data"))
        server = GatewayServer(config_from_yaml(folder, messages_yaml(module_emu, folder / "data")))
    yield server
    server.stop()


@pytest.fixture
def emu(module_emu: EmulatorServer) -> Iterator[EmulatorServer]:
    module_emu.reset()
    return module_emu


@pytest.fixture
def client(gw: GatewayServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gw.url, api_key="unused", max_retries=0) as c:
        yield c


def upstream_calls(emu: EmulatorServer) -> list[dict[str, Any]]:
    return [r for r in emu.requests() if r["method"] == "POST" and "/_emulator" not in r["path"]]


@pytest.mark.parametrize("model", MODELS)
def test_create(client: anthropic.Anthropic, emu: EmulatorServer, model: str) -> None:
    message = client.messages.create(
        model=model,
        max_tokens=64,
        system="Be brief.",
        messages=[{"role": "user", "content": "Say hello to the gateway"}],
    )
    assert isinstance(message, Message)
    assert message.role == "assistant"
    assert message.type == "message"
    assert message.content[0].type == "text"
    assert message.content[0].text.startswith("Emulated reply to: Say hello")
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0
    assert message.usage.output_tokens > 0
    assert message._request_id  # the request-id header
    (call,) = upstream_calls(emu)
    provider = {"claude": "/v1/messages", "gpt": "/chat/completions", "gem": "generateContent"}
    assert provider[model] in call["path"]


@pytest.mark.parametrize("model", MODELS)
def test_stream_text(client: anthropic.Anthropic, model: str) -> None:
    with client.messages.stream(
        model=model,
        max_tokens=64,
        messages=[{"role": "user", "content": "Stream me some words [[words:12]]"}],
    ) as stream:
        events = list(stream)
        text = "".join(
            e.delta.text
            for e in events
            if e.type == "content_block_delta" and e.delta.type == "text_delta"
        )  # type: ignore[union-attr]
        final = stream.get_final_message()
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start"
    assert kinds[-1] == "message_stop"
    assert "message_delta" in kinds
    assert "content_block_start" in kinds
    assert final.content[0].type == "text"
    assert final.content[0].text == text
    assert text.startswith("Emulated reply to: Stream me")
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0
    assert final.usage.input_tokens > 0


def raw_events(gw: GatewayServer, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The SSE events as sent, each checked against the SDK's event types."""
    events: list[dict[str, Any]] = []
    with httpx.stream(
        "POST", f"{gw.url}/v1/messages", json={**body, "stream": True}, timeout=30
    ) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in resp.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                assert data["type"] == name
                if name not in ("ping", "error"):
                    EVENTS.validate_python(data)
                events.append(data)
    return events


@pytest.mark.parametrize("model", MODELS)
def test_stream_tool_use(client: anthropic.Anthropic, gw: GatewayServer, model: str) -> None:
    body = {
        "model": model,
        "max_tokens": 100,
        "tools": [WEATHER],
        "tool_choice": {"type": "any"},
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
    }
    events = raw_events(gw, body)
    starts = [e for e in events if e["type"] == "content_block_start"]
    tool = [s for s in starts if s["content_block"]["type"] == "tool_use"]
    assert len(tool) == 1
    assert tool[0]["content_block"]["name"] == "get_weather"
    fragments = [
        e["delta"]["partial_json"]
        for e in events
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta"
    ]
    assert len(fragments) >= 1
    assert isinstance(json.loads("".join(fragments))["city"], str)
    assert [s["index"] for s in starts] == list(range(len(starts)))
    assert events[-2]["delta"]["stop_reason"] == "tool_use"

    with client.messages.stream(**body) as stream:  # type: ignore[arg-type]
        final = stream.get_final_message()
    (use,) = [b for b in final.content if b.type == "tool_use"]
    assert use.name == "get_weather"
    assert isinstance(use.input["city"], str)


@pytest.mark.parametrize("model", MODELS)
def test_tool_result_round_trip(
    client: anthropic.Anthropic, emu: EmulatorServer, model: str
) -> None:
    question = {"role": "user", "content": "Weather in Paris?"}
    first = client.messages.create(
        model=model,
        max_tokens=100,
        tools=[WEATHER],
        messages=[question],  # type: ignore[list-item]
    )
    assert first.stop_reason == "tool_use"
    (use,) = [b for b in first.content if b.type == "tool_use"]
    second = client.messages.create(
        model=model,
        max_tokens=100,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[
            question,  # type: ignore[list-item]
            {"role": "assistant", "content": first.content},  # type: ignore[typeddict-item]
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": use.id, "content": "Sunny, 21 C"}
                ],
            },
        ],
    )
    assert second.stop_reason == "end_turn"
    assert second.content[0].type == "text"
    assert second.content[0].text
    last = upstream_calls(emu)[-1]["body"]
    if model == "gpt":
        tool_message = last["messages"][-1]
        assert tool_message == {"role": "tool", "tool_call_id": use.id, "content": "Sunny, 21 C"}
    elif model == "claude":
        assert last["messages"][-1]["content"][0]["tool_use_id"] == use.id


def test_thinking_streamed_and_passed_back(
    client: anthropic.Anthropic, emu: EmulatorServer, gw: GatewayServer
) -> None:
    body: dict[str, Any] = {
        "model": "claude",
        "max_tokens": 2048,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [{"role": "user", "content": "Think about the gateway"}],
    }
    events = raw_events(gw, body)
    deltas = [e["delta"]["type"] for e in events if e["type"] == "content_block_delta"]
    assert "thinking_delta" in deltas
    assert "signature_delta" in deltas
    assert "text_delta" in deltas
    with client.messages.stream(**body) as stream:
        final = stream.get_final_message()
    thinking = final.content[0]
    assert thinking.type == "thinking"
    assert thinking.signature
    assert thinking.thinking
    # The signed block goes back untouched (the emulator refuses a changed signature).
    again = client.messages.create(
        model="claude",
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[
            body["messages"][0],
            {"role": "assistant", "content": final.content},  # type: ignore[typeddict-item]
            {"role": "user", "content": "And now?"},
        ],
    )
    assert again.content[0].type == "thinking"
    sent = upstream_calls(emu)[-1]["body"]["messages"][1]["content"][0]
    assert sent == {
        "type": "thinking",
        "thinking": thinking.thinking,
        "signature": thinking.signature,
    }


def test_passthrough_fidelity(gw: GatewayServer, emu: EmulatorServer) -> None:
    """What the Anthropic deployment receives is what the client sent, but the model name."""
    body = {
        "model": "claude",
        "max_tokens": 50,
        "system": [
            {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Read this", "cache_control": {"type": "ephemeral"}},
                    {
                        "type": "document",
                        "source": {
                            "type": "base64",
                            "media_type": "application/pdf",
                            "data": "JVBERi0xLjQK",
                        },
                        "title": "spec.pdf",
                    },
                ],
            }
        ],
        "top_k": 5,
        "temperature": 0.3,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "user-42"},
        "tools": [{**WEATHER, "cache_control": {"type": "ephemeral"}}],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "some_future_field": {"x": 1},
    }
    headers = {"anthropic-version": "2023-06-01", "anthropic-beta": "prompt-caching-2024-07-31"}
    resp = httpx.post(f"{gw.url}/v1/messages", json=body, headers=headers, timeout=30)
    assert resp.status_code == 200, resp.text
    (call,) = upstream_calls(emu)
    assert call["body"] == {**body, "model": CLAUDE}
    assert call["headers"]["anthropic-version"] == "2023-06-01"
    assert call["headers"]["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert call["headers"]["x-api-key"] == EMULATOR_KEY


@pytest.mark.parametrize("model", MODELS)
def test_count_tokens(client: anthropic.Anthropic, emu: EmulatorServer, model: str) -> None:
    short = client.messages.count_tokens(
        model=model, messages=[{"role": "user", "content": "hello"}]
    )
    long = client.messages.count_tokens(
        model=model,
        system="You are a helpful assistant.",
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "hello " * 200}],
    )
    assert 0 < short.input_tokens < long.input_tokens
    assert upstream_calls(emu) == []  # counted by the gateway, no upstream call


@pytest.mark.parametrize("model", MODELS)
def test_usage_record_with_cost(client: anthropic.Anthropic, gw: GatewayServer, model: str) -> None:
    response = client.messages.with_raw_response.create(
        model=model, max_tokens=32, messages=[{"role": "user", "content": "Record me"}]
    )
    message = response.parse()
    request_id = response.headers["x-request-id"]
    rows = httpx.get(
        f"{gw.url}/ai/analytics/requests", params={"request_id": request_id}, timeout=10
    ).json()["data"]
    (row,) = rows
    assert row["status"] == 200
    assert row["route"] == "chat"
    assert row["model"] == model
    assert row["completion_tokens"] == message.usage.output_tokens
    assert Decimal(row["cost_usd"]) > 0


def test_answers_match_the_openapi_document(gw: GatewayServer) -> None:
    spec = httpx.get(f"{gw.url}/openapi.json").json()
    assert "/v1/messages" in spec["paths"]
    assert "/ai/messages/count_tokens" in spec["paths"]

    def check(name: str, instance: Any) -> None:
        schema = {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
        assert not list(Draft202012Validator(schema).iter_errors(instance))

    body = {"model": "gpt", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    check("MessagesRequest", body)
    check("AnthropicMessage", httpx.post(f"{gw.url}/v1/messages", json=body, timeout=30).json())
    count = httpx.post(f"{gw.url}/v1/messages/count_tokens", json=body, timeout=30).json()
    check("MessageTokensCount", count)
    bad = httpx.post(f"{gw.url}/v1/messages", json={"model": "gpt"}, timeout=30)
    check("AnthropicError", bad.json())
    request_schema = {"$ref": "#/components/schemas/MessagesRequest", **spec}
    assert list(Draft202012Validator(request_schema).iter_errors({"model": "gpt"}))
