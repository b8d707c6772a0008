"""The request log, the statistics and the server-wide settings."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .support import ANTHROPIC_HEADERS, GEMINI_HEADERS, OPENAI_HEADERS, Emulator, parse_sse

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "count these words"}]}
MESSAGES = {
    "model": "claude-3-5-haiku-20241022",
    "max_tokens": 50,
    "messages": [{"role": "user", "content": "hello"}],
}
GEMINI = {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}
GENERATE = "/v1beta/models/gemini-2.0-flash:generateContent"


async def test_request_log_keeps_the_last_requests_newest_last(emulator: Emulator) -> None:
    await emulator.post("/v1/chat/completions", CHAT, OPENAI_HEADERS)
    await emulator.post("/v1/messages", MESSAGES, ANTHROPIC_HEADERS)
    await emulator.post(GENERATE + "?key=abc", GEMINI)
    entries = await emulator.requests(limit=2)
    assert [e["provider"] for e in entries] == ["anthropic", "gemini"]
    anthropic, gemini = entries
    assert (anthropic["method"], anthropic["path"]) == ("POST", "/v1/messages")
    assert anthropic["headers"]["anthropic-version"] == "2023-06-01"
    assert anthropic["body"] == MESSAGES
    assert gemini["query"] == {"key": "abc"}
    assert gemini["path"] == "/v1beta/models/gemini-2.0-flash:generateContent"
    assert len(await emulator.requests()) == 3
    async with emulator.session.delete(emulator.base + "/_emulator/requests") as resp:
        assert await resp.json() == {"cleared": 3}
    assert await emulator.requests() == []


async def test_control_requests_are_not_logged(emulator: Emulator) -> None:
    await emulator.stats()
    await emulator.faults()
    assert await emulator.requests() == []


async def test_stats_match_the_usage_that_was_reported(emulator: Emulator) -> None:
    reported = {"prompt": 0, "completion": 0}

    def add(prompt: int, completion: int) -> None:
        reported["prompt"] += prompt
        reported["completion"] += completion

    _, body, _ = await emulator.post("/v1/chat/completions", CHAT, OPENAI_HEADERS)
    add(body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"])
    stream = {**CHAT, "stream": True, "stream_options": {"include_usage": True}, "n": 2}
    _, text, _ = await emulator.post("/v1/chat/completions", stream, OPENAI_HEADERS)
    usage = [d for _, d in parse_sse(text) if d != "[DONE]"][-1]["usage"]
    add(usage["prompt_tokens"], usage["completion_tokens"])
    _, body, _ = await emulator.post(
        "/v1/embeddings", {"model": "gpt-4o", "input": ["a b", "c"]}, OPENAI_HEADERS
    )
    add(body["usage"]["prompt_tokens"], 0)
    await emulator.post("/v1/chat/completions", {**CHAT, "model": "nope"}, OPENAI_HEADERS)
    await emulator.post("/v1/chat/completions", CHAT)
    stats = await emulator.stats()
    gpt = stats["openai"]["gpt-4o"]
    assert (gpt["prompt_tokens"], gpt["completion_tokens"]) == (
        reported["prompt"],
        reported["completion"],
    )
    assert (gpt["requests"], gpt["succeeded"], gpt["errors"]) == (4, 3, {"401": 1})
    assert stats["openai"]["nope"]["errors"] == {"404": 1}

    _, text, _ = await emulator.post(
        "/v1/messages", {**MESSAGES, "stream": True}, ANTHROPIC_HEADERS
    )
    events = parse_sse(text)
    start, delta = events[0][1]["message"]["usage"], events[-2][1]["usage"]
    _, text, _ = await emulator.post(
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", GEMINI, GEMINI_HEADERS
    )
    gemini_usage = parse_sse(text)[-1][1]["usageMetadata"]
    stats = await emulator.stats()
    claude = stats["anthropic"]["claude-3-5-haiku-20241022"]
    assert (claude["prompt_tokens"], claude["completion_tokens"]) == (
        start["input_tokens"],
        delta["output_tokens"],
    )
    gemini = stats["gemini"]["gemini-2.0-flash"]
    assert (gemini["prompt_tokens"], gemini["completion_tokens"]) == (
        gemini_usage["promptTokenCount"],
        gemini_usage["candidatesTokenCount"],
    )
    async with emulator.session.delete(emulator.base + "/_emulator/stats") as resp:
        assert resp.status == 200
    assert await emulator.stats() == {}


async def test_latency_and_chunk_delay_settings(start_emulator: Any) -> None:
    emulator: Emulator = await start_emulator(latency_s=0.1, chunk_delay_s=0.01)
    begun = time.monotonic()
    await emulator.post("/v1/chat/completions", CHAT, OPENAI_HEADERS)
    assert time.monotonic() - begun >= 0.1
    begun = time.monotonic()
    _, text, _ = await emulator.post(
        "/v1/chat/completions", {**CHAT, "stream": True}, OPENAI_HEADERS
    )
    frames = len(parse_sse(text))
    assert time.monotonic() - begun >= 0.1 + 0.01 * (frames - 1)


async def test_a_client_abandoning_a_stream_is_counted(start_emulator: Any) -> None:
    emulator: Emulator = await start_emulator(chunk_delay_s=0.005)
    body = {**CHAT, "stream": True}
    body["messages"] = [{"role": "user", "content": "long please [[words:400]]"}]
    async with emulator.session.post(
        emulator.base + "/v1/chat/completions", json=body, headers=OPENAI_HEADERS
    ) as resp:
        await resp.content.readline()
        resp.close()
    for _ in range(200):
        stats = (await emulator.stats())["openai"]["gpt-4o"]
        if stats["client_disconnects"]:
            break
        await asyncio.sleep(0.01)
    assert (stats["client_disconnects"], stats["succeeded"]) == (1, 0)


async def test_embedding_dim_setting(start_emulator: Any) -> None:
    emulator: Emulator = await start_emulator(embedding_dim=5)
    body = {"model": "text-embedding-3-small", "input": "hello"}
    _, answer, _ = await emulator.post("/v1/embeddings", body, OPENAI_HEADERS)
    assert len(answer["data"][0]["embedding"]) == 5
