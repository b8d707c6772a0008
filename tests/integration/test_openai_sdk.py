"""The official `openai` SDK, pointed at the gateway, against the project's emulator."""

from __future__ import annotations

import base64
import json
import struct

import openai
import pytest

from conftest import EMULATOR_KEY
from harness import EmulatorServer, GatewayServer

TOOLS = [
    {
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
]


def upstream_calls(emu: EmulatorServer, path_suffix: str) -> list[dict]:
    return [r for r in emu.requests() if r["path"].endswith(path_suffix)]


def test_chat_completion(client: openai.OpenAI, emu: EmulatorServer) -> None:
    result = client.chat.completions.create(
        model="fast",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hello there gateway"},
        ],
        max_tokens=50,
        temperature=0.3,
    )
    assert result.object == "chat.completion"
    assert result.choices[0].message.role == "assistant"
    assert "Hello there gateway" in (result.choices[0].message.content or "")
    assert result.choices[0].finish_reason == "stop"
    assert result.usage is not None
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens
    (sent,) = upstream_calls(emu, "/chat/completions")
    assert sent["body"]["model"] == "gpt-4o-mini"  # the public name became the upstream id
    assert sent["body"]["temperature"] == 0.3
    assert sent["body"]["messages"][0] == {"role": "system", "content": "You are terse."}


def test_provider_key_is_sent_and_client_key_is_not(
    client: openai.OpenAI, emu: EmulatorServer
) -> None:
    client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}])
    (sent,) = upstream_calls(emu, "/chat/completions")
    headers = {k.lower(): v for k, v in sent["headers"].items()}
    assert headers["authorization"] == f"Bearer {EMULATOR_KEY}"
    assert "unused" not in json.dumps(sent)


def test_unknown_fields_are_passed_through(client: openai.OpenAI, emu: EmulatorServer) -> None:
    client.chat.completions.create(
        model="fast",
        messages=[{"role": "user", "content": "hi"}],
        extra_body={"reasoning_effort": "low", "metadata": {"team": "docs"}},
        seed=7,
    )
    (sent,) = upstream_calls(emu, "/chat/completions")
    assert sent["body"]["reasoning_effort"] == "low"
    assert sent["body"]["metadata"] == {"team": "docs"}
    assert sent["body"]["seed"] == 7


@pytest.mark.parametrize("include_usage", [True, False])
def test_streamed_chat(client: openai.OpenAI, emu: EmulatorServer, include_usage: bool) -> None:
    kwargs = {"stream_options": {"include_usage": True}} if include_usage else {}
    stream = client.chat.completions.create(
        model="fast",
        messages=[{"role": "user", "content": "stream these words please"}],
        stream=True,
        **kwargs,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "stream these words please" in text
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    usage_chunks = [c for c in chunks if c.usage is not None]
    if include_usage:
        assert len(usage_chunks) == 1
        assert chunks[-1].choices == []
        assert usage_chunks[0].usage is not None
        assert usage_chunks[0].usage.completion_tokens > 0
    else:
        assert usage_chunks == []
        assert all(c.choices for c in chunks)
    # The gateway always asks upstream for usage, so every stream is accounted.
    (sent,) = upstream_calls(emu, "/chat/completions")
    assert sent["body"]["stream_options"]["include_usage"] is True


def test_tool_call(client: openai.OpenAI) -> None:
    result = client.chat.completions.create(
        model="fast",
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=TOOLS,  # type: ignore[arg-type]
        tool_choice="auto",
    )
    choice = result.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    args = json.loads(call.function.arguments)  # type: ignore[union-attr]
    assert set(args) >= {"city", "days"}
    # Round trip: send the result back, get text that uses it.
    follow = client.chat.completions.create(
        model="fast",
        messages=[
            {"role": "user", "content": "What is the weather in Paris?"},
            choice.message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": "sunny, 24C"},
        ],
        tools=TOOLS,  # type: ignore[arg-type]
    )
    assert "sunny, 24C" in (follow.choices[0].message.content or "")


def test_streamed_tool_call_arguments(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="fast",
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=TOOLS,  # type: ignore[arg-type]
        stream=True,
    )
    pieces: list[str] = []
    names: list[str] = []
    finish = None
    for chunk in stream:
        if not chunk.choices:
            continue
        for tc in chunk.choices[0].delta.tool_calls or []:
            if tc.function and tc.function.name:
                names.append(tc.function.name)
            if tc.function and tc.function.arguments:
                pieces.append(tc.function.arguments)
        finish = chunk.choices[0].finish_reason or finish
    assert names == ["get_weather"]
    assert len(pieces) > 1  # arguments really arrive in fragments
    assert set(json.loads("".join(pieces))) >= {"city", "days"}
    assert finish == "tool_calls"


def test_embeddings_float_and_base64(client: openai.OpenAI) -> None:
    floats = client.embeddings.create(
        model="embed", input=["alpha", "beta"], encoding_format="float"
    )
    assert [d.index for d in floats.data] == [0, 1]
    vector = floats.data[0].embedding
    assert len(vector) > 0
    assert all(isinstance(x, float) for x in vector)
    # The SDK asks for base64 by default and decodes it; check the raw wire form too.
    raw = client.embeddings.with_raw_response.create(
        model="embed", input="alpha", encoding_format="base64"
    )
    encoded = raw.http_response.json()["data"][0]["embedding"]
    decoded = struct.unpack(f"<{len(vector)}f", base64.b64decode(encoded))
    assert decoded == pytest.approx(vector, rel=1e-6)
    default = client.embeddings.create(model="embed", input="alpha")
    assert default.data[0].embedding == pytest.approx(vector, rel=1e-6)


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"fast", "embed"} <= ids
    assert "openai/gpt-4o" in ids  # direct provider models come from the registry
    fast = client.models.retrieve("fast")
    extra = fast.model_extra or {}
    assert extra["provider"] == "openai"
    assert extra["upstream_model"] == "gpt-4o-mini"
    assert extra["context_window"] == 128000
    assert extra["pricing"]["input"] == "0.15"
    assert client.models.retrieve("openai/gpt-4o").id == "openai/gpt-4o"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_direct_provider_form(client: openai.OpenAI, emu: EmulatorServer) -> None:
    result = client.chat.completions.create(
        model="openai/gpt-4.1-nano", messages=[{"role": "user", "content": "direct"}]
    )
    assert result.choices[0].message.content
    (sent,) = upstream_calls(emu, "/chat/completions")
    assert sent["body"]["model"] == "gpt-4.1-nano"


def test_ai_prefix_works_for_the_sdk(gateway: GatewayServer) -> None:
    with openai.OpenAI(base_url=f"{gateway.url}/ai", api_key="x", max_retries=0) as sdk:
        result = sdk.chat.completions.create(
            model="fast", messages=[{"role": "user", "content": "via /ai"}]
        )
        assert result.choices[0].message.content
        assert any(m.id == "fast" for m in sdk.models.list())
