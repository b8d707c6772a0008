"""The official ``openai`` SDK, pointed at the emulator's ``/v1``, works end to end."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import openai
import pytest

from .support import Emulator

TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
            "required": ["query", "limit"],
        },
    },
}


@pytest.fixture
async def client(emulator: Emulator) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        api_key="sk-test", base_url=emulator.base + "/v1", max_retries=0
    ) as sdk:
        yield sdk


async def test_chat(client: openai.AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello"}]
    )
    assert completion.choices[0].message.content is not None
    assert completion.choices[0].message.content.startswith("Emulated reply to: Say hello")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 13


async def test_streaming_with_usage(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Say hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, finish = "", None, None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage is not None:
            usage = chunk.usage
    assert text.startswith("Emulated reply to: Say hello")
    assert finish == "stop"
    assert usage is not None
    assert usage.completion_tokens == len(text.split())


async def test_tools(client: openai.AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "find cats"}],
        tools=[TOOL],  # type: ignore[list-item]
    )
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None
    call = message.tool_calls[0]
    assert call.type == "function"
    assert call.function.name == "lookup"
    assert json.loads(call.function.arguments) == {"query": "example", "limit": 1}
    follow = await client.chat.completions.create(
        model="gpt-4o",
        messages=[
            {"role": "user", "content": "find cats"},
            message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": "3 cats found"},
        ],
        tools=[TOOL],  # type: ignore[list-item]
    )
    assert follow.choices[0].message.content is not None
    assert "3 cats found" in follow.choices[0].message.content


async def test_embeddings(client: openai.AsyncOpenAI) -> None:
    result = await client.embeddings.create(
        model="text-embedding-3-small", input=["one", "two words"]
    )
    assert [len(d.embedding) for d in result.data] == [8, 8]
    assert result.usage.prompt_tokens == 3
    floats = await client.embeddings.create(
        model="text-embedding-3-small", input=["one", "two words"], encoding_format="float"
    )
    assert [d.embedding for d in floats.data] == [d.embedding for d in result.data]


async def test_errors_surface_as_sdk_exceptions(
    emulator: Emulator, client: openai.AsyncOpenAI
) -> None:
    await emulator.faults({"kind": "status", "status": 429, "retry_after": 1})
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.code == "rate_limit_exceeded"
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(
            model="unknown-model", messages=[{"role": "user", "content": "hi"}]
        )
    await emulator.faults({"kind": "error_event", "after_chunks": 2})
    stream = await client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    with pytest.raises(openai.APIError):
        async for _ in stream:
            pass
