"""The `openai` SDK -> the gateway -> aimock, a third-party Gemini mock (not the project's own).

aimock serves ``generateContent`` and ``streamGenerateContent?alt=sse`` from fixtures, but of the
embedding methods only ``embedContent``, not the ``batchEmbedContents`` the adapter uses, so
embeddings are covered by the emulator tests only. aimock reports function calls with the
non-standard finish reason ``FUNCTION_CALL``, which exercises the rule for unknown reasons.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from conftest import PROVIDER_ENV
from harness import GatewayServer, config_from_yaml, start_aimock

KEY = "gm-aimock-provider-key-0001"
FIXTURES = {
    "fixtures": [
        {
            "match": {"toolResultContains": "sunny"},
            "response": {"content": "It is sunny in Paris today."},
        },
        {
            "match": {"userMessage": "hello"},
            "response": {
                "content": "Hello from a mock that is not ours!",
                "usage": {"promptTokenCount": 11, "candidatesTokenCount": 9},
            },
            "chunkSize": 6,
        },
        {
            "match": {"toolName": "get_weather"},
            "response": {
                "toolCalls": [{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}]
            },
        },
    ]
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        },
    },
}


@pytest.fixture(scope="module")
def aimock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path: Path = tmp_path_factory.mktemp("aimock") / "fixtures.json"
    path.write_text(json.dumps(FIXTURES))
    with start_aimock(path) as url:
        yield url


@pytest.fixture(scope="module")
def client(aimock: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    yaml_text = (
        "models:\n  - {name: gem, provider: gemini, model: gemini-2.0-flash, "
        f'api_base: "{aimock}", api_key: {KEY}}}\n'
    )
    with pytest.MonkeyPatch.context() as env:
        for name in PROVIDER_ENV:
            env.delenv(name, raising=False)
        gateway = GatewayServer(config_from_yaml(tmp_path_factory.mktemp("gw"), yaml_text))
    try:
        with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="client", max_retries=0) as c:
            yield c
    finally:
        gateway.stop()


def journal(aimock: str) -> list[dict[str, Any]]:
    entries = httpx.get(f"{aimock}/__aimock/journal").json()
    return entries if isinstance(entries, list) else entries["entries"]


def test_chat(client: openai.OpenAI, aimock: str) -> None:
    result = client.chat.completions.create(
        model="gem",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello there"},
        ],
    )
    assert result.choices[0].message.content == "Hello from a mock that is not ours!"
    assert result.choices[0].finish_reason == "stop"
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (11, 9)
    sent = journal(aimock)[-1]
    assert sent["path"] == "/v1beta/models/gemini-2.0-flash:generateContent"
    assert "x-goog-api-key" in sent["headers"]  # aimock's journal redacts the value
    assert KEY not in sent["path"]


def test_streamed_chat(client: openai.OpenAI, aimock: str) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gem",
            messages=[{"role": "user", "content": "hello stream"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert "".join(pieces) == "Hello from a mock that is not ours!"
    assert len(pieces) == 6  # aimock's 6-character frames, relayed one by one
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (11, 9)
    sent = journal(aimock)[-1]
    assert sent["path"].endswith(":streamGenerateContent?alt=sse")
    assert KEY not in sent["path"]


def test_tool_calls_and_their_results(client: openai.OpenAI) -> None:
    question = {"role": "user", "content": "What is the weather in Paris?"}
    result = client.chat.completions.create(model="gem", messages=[question], tools=[WEATHER])
    choice = result.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris", "days": 2}  # type: ignore[union-attr]
    follow = client.chat.completions.create(
        model="gem",
        messages=[
            question,
            choice.message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": "sunny, 24C"},
        ],
        tools=[WEATHER],
    )
    assert follow.choices[0].message.content == "It is sunny in Paris today."


def test_streamed_tool_call(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gem",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER],
        stream=True,
    )
    deltas = []
    finishes = []
    for chunk in stream:
        for choice in chunk.choices:
            deltas += choice.delta.tool_calls or []
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    (delta,) = deltas
    assert delta.index == 0
    assert delta.id
    assert delta.id.startswith("call_")
    assert delta.function is not None
    assert delta.function.name == "get_weather"
    assert json.loads(delta.function.arguments or "") == {"city": "Paris", "days": 2}
    assert finishes == ["tool_calls"]
