"""Scripted faults over real sockets: statuses, dropped connections, broken streams."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from .support import ANTHROPIC_HEADERS, GEMINI_HEADERS, OPENAI_HEADERS, Emulator, parse_sse

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello there"}]}
MESSAGES = {
    "model": "claude-3-5-haiku-20241022",
    "max_tokens": 50,
    "messages": [{"role": "user", "content": "hello there"}],
}
GEMINI = {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}
GENERATE = "/v1beta/models/gemini-2.0-flash:generateContent"
STREAM_SSE = "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"


async def test_status_faults_use_each_providers_error_format(emulator: Emulator) -> None:
    await emulator.faults(
        {"kind": "status", "status": 429, "retry_after": 2, "provider": "openai"},
        {"kind": "status", "status": 529, "provider": "anthropic"},
        {"kind": "status", "status": 429, "retry_after": 1.5, "provider": "gemini"},
    )
    status, body, resp = await emulator.post("/v1/chat/completions", CHAT, OPENAI_HEADERS)
    assert (status, resp.headers["retry-after"]) == (429, "2")
    assert body["error"]["code"] == "rate_limit_exceeded"
    status, body, resp = await emulator.post("/v1/messages", MESSAGES, ANTHROPIC_HEADERS)
    assert status == 529
    assert body["type"] == "error"
    assert body["error"]["type"] == "overloaded_error"
    assert body["request_id"] == resp.headers["request-id"]
    status, body, _ = await emulator.post(GENERATE, GEMINI, GEMINI_HEADERS)
    assert (status, body["error"]["status"]) == (429, "RESOURCE_EXHAUSTED")
    assert body["error"]["details"][0]["retryDelay"] == "1.5s"
    for path, payload, headers in (
        ("/v1/chat/completions", CHAT, OPENAI_HEADERS),
        ("/v1/messages", MESSAGES, ANTHROPIC_HEADERS),
        (GENERATE, GEMINI, GEMINI_HEADERS),
    ):
        assert (await emulator.post(path, payload, headers))[0] == 200


@pytest.mark.parametrize(
    ("status", "anthropic_type", "gemini_status"),
    [(500, "api_error", "INTERNAL"), (503, "api_error", "UNAVAILABLE"), (401, None, None)],
)
async def test_status_fault_mapping(
    emulator: Emulator, status: int, anthropic_type: str | None, gemini_status: str | None
) -> None:
    await emulator.faults({"kind": "status", "status": status, "count": 3})
    code, body, _ = await emulator.post("/v1/chat/completions", CHAT, OPENAI_HEADERS)
    assert code == status
    assert set(body["error"]) == {"message", "type", "param", "code"}
    code, body, _ = await emulator.post("/v1/messages", MESSAGES, ANTHROPIC_HEADERS)
    assert code == status
    assert body["error"]["type"] == (anthropic_type or "authentication_error")
    code, body, _ = await emulator.post(GENERATE, GEMINI, GEMINI_HEADERS)
    assert (code, body["error"]["code"]) == (status, status)
    assert body["error"]["status"] == (gemini_status or "UNAUTHENTICATED")


async def test_filters_and_counts(emulator: Emulator) -> None:
    await emulator.faults(
        {"kind": "status", "status": 500, "provider": "anthropic", "model": "claude-x", "count": 2}
    )
    _, pending = await emulator.get("/_emulator/faults")
    assert pending["pending"][0]["count"] == 2
    assert (await emulator.post("/v1/chat/completions", CHAT, OPENAI_HEADERS))[0] == 200
    assert (await emulator.post("/v1/messages", MESSAGES, ANTHROPIC_HEADERS))[0] == 200
    other = {**MESSAGES, "model": "claude-x"}
    codes = [(await emulator.post("/v1/messages", other, ANTHROPIC_HEADERS))[0] for _ in range(3)]
    assert codes == [500, 500, 200]
    assert (await emulator.get("/_emulator/faults"))[1] == {"pending": []}


async def test_clearing_faults(emulator: Emulator) -> None:
    await emulator.faults({"kind": "drop"}, {"kind": "drop"})
    async with emulator.session.delete(emulator.base + "/_emulator/faults") as resp:
        assert await resp.json() == {"cleared": 2}
    assert (await emulator.post("/v1/chat/completions", CHAT, OPENAI_HEADERS))[0] == 200


async def test_drop_closes_the_socket_without_a_response(emulator: Emulator) -> None:
    await emulator.faults({"kind": "drop"})
    url = urlsplit(emulator.base)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    payload = json.dumps(CHAT).encode()
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: emulator\r\n"
        b"Authorization: Bearer sk-test\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    await writer.drain()
    received = await asyncio.wait_for(reader.read(), timeout=5)
    writer.close()
    await writer.wait_closed()
    assert received == b""
    stats = await emulator.stats()
    assert stats["openai"]["gpt-4o"]["dropped"] == 1


async def test_drop_surfaces_as_a_disconnect_in_clients(emulator: Emulator) -> None:
    await emulator.faults({"kind": "drop", "provider": "gemini"})
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await emulator.post(GENERATE, GEMINI, GEMINI_HEADERS)


async def _read_until_broken(
    emulator: Emulator, path: str, body: dict[str, Any], headers: dict[str, str]
) -> tuple[int, bytes]:
    """Status and the bytes received before the body broke off (fails if it completes)."""
    received: list[bytes] = []
    async with emulator.session.post(emulator.base + path, json=body, headers=headers) as resp:

        async def drain() -> None:
            async for chunk in resp.content.iter_any():
                received.append(chunk)

        with pytest.raises(aiohttp.ClientPayloadError):
            await drain()
        return resp.status, b"".join(received)


async def test_drop_mid_stream_sends_n_chunks_then_breaks_the_body(emulator: Emulator) -> None:
    await emulator.faults({"kind": "drop_mid_stream", "after_chunks": 2})
    status, received = await _read_until_broken(
        emulator, "/v1/chat/completions", {**CHAT, "stream": True}, OPENAI_HEADERS
    )
    assert status == 200
    events = parse_sse(received.decode())
    assert len(events) == 2
    assert events[1][1]["choices"][0]["delta"]["content"] == "Emulated "
    await emulator.faults({"kind": "drop_mid_stream", "after_chunks": 3})
    _, received = await _read_until_broken(emulator, STREAM_SSE, GEMINI, GEMINI_HEADERS)
    assert len(parse_sse(received.decode())) == 3
    stats = await emulator.stats()
    assert stats["openai"]["gpt-4o"]["dropped"] == 1
    assert stats["openai"]["gpt-4o"]["succeeded"] == 0


async def test_drop_mid_stream_on_a_json_answer_truncates_the_body(emulator: Emulator) -> None:
    await emulator.faults({"kind": "drop_mid_stream"})
    status, received = await _read_until_broken(
        emulator, "/v1/messages", MESSAGES, ANTHROPIC_HEADERS
    )
    assert status == 200
    assert received.startswith(b'{"id":"msg_')


async def test_anthropic_error_event_mid_stream(emulator: Emulator) -> None:
    await emulator.faults({"kind": "error_event", "after_chunks": 3})
    status, text, _ = await emulator.post(
        "/v1/messages", {**MESSAGES, "stream": True}, ANTHROPIC_HEADERS
    )
    assert status == 200
    events = parse_sse(text)
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "ping",
        "error",
    ]
    assert events[-1][1] == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
    await emulator.faults({"kind": "error_event"})
    status, body, _ = await emulator.post("/v1/messages", MESSAGES, ANTHROPIC_HEADERS)
    assert (status, body["error"]["type"]) == (529, "overloaded_error")


async def test_openai_and_gemini_error_events(emulator: Emulator) -> None:
    await emulator.faults({"kind": "error_event", "after_chunks": 1, "count": 2})
    _, text, _ = await emulator.post(
        "/v1/chat/completions", {**CHAT, "stream": True}, OPENAI_HEADERS
    )
    events = [data for _, data in parse_sse(text)]
    assert len(events) == 2
    assert events[-1]["error"]["type"] == "server_error"
    _, text, _ = await emulator.post(STREAM_SSE, GEMINI, GEMINI_HEADERS)
    events = [data for _, data in parse_sse(text)]
    assert events[-1] == {
        "error": {
            "code": 503,
            "message": "The model is overloaded. Please try again later.",
            "status": "UNAVAILABLE",
        }
    }
    stats = await emulator.stats()
    assert stats["gemini"]["gemini-2.0-flash"]["stream_errors"] == 1


async def test_delay_fault_trips_a_client_timeout(emulator: Emulator) -> None:
    await emulator.faults({"kind": "delay", "seconds": 0.25})
    timeout = aiohttp.ClientTimeout(total=0.05)
    with pytest.raises(asyncio.TimeoutError):
        async with emulator.session.post(
            emulator.base + "/v1/chat/completions",
            json=CHAT,
            headers=OPENAI_HEADERS,
            timeout=timeout,
        ) as resp:
            await resp.read()
    assert (await emulator.post("/v1/chat/completions", CHAT, OPENAI_HEADERS))[0] == 200


async def test_safety_blocks(emulator: Emulator) -> None:
    await emulator.faults(
        {"kind": "safety_block", "stage": "prompt", "provider": "gemini"},
        {"kind": "safety_block", "stage": "response", "provider": "gemini"},
        {"kind": "safety_block", "provider": "openai"},
        {"kind": "safety_block", "stage": "prompt", "provider": "openai"},
        {"kind": "safety_block", "provider": "anthropic"},
    )
    _, blocked, _ = await emulator.post(GENERATE, GEMINI, GEMINI_HEADERS)
    assert "candidates" not in blocked
    assert blocked["promptFeedback"]["blockReason"] == "SAFETY"
    assert blocked["usageMetadata"]["promptTokenCount"] == 5
    _, text, _ = await emulator.post(STREAM_SSE, GEMINI, GEMINI_HEADERS)
    last = parse_sse(text)[-1][1]["candidates"][0]
    assert last["finishReason"] == "SAFETY"
    assert any(r.get("blocked") for r in last["safetyRatings"])
    _, body, _ = await emulator.post("/v1/chat/completions", CHAT, OPENAI_HEADERS)
    assert body["choices"][0]["finish_reason"] == "content_filter"
    status, body, _ = await emulator.post("/v1/chat/completions", CHAT, OPENAI_HEADERS)
    assert (status, body["error"]["code"]) == (400, "content_filter")
    _, body, _ = await emulator.post("/v1/messages", MESSAGES, ANTHROPIC_HEADERS)
    assert body["stop_reason"] == "refusal"


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "explode"},
        {"kind": "status", "status": 200},
        {"kind": "drop", "provider": "azure"},
        {"kind": "delay", "seconds": -1},
        {"kind": "drop", "after_chunks": 2},
        {"kind": "status", "count": 0},
    ],
)
async def test_invalid_fault_specs_are_rejected(emulator: Emulator, spec: dict[str, Any]) -> None:
    async with emulator.session.post(
        emulator.base + "/_emulator/faults", json={"faults": [spec]}
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["message"]
    assert (await emulator.get("/_emulator/faults"))[1] == {"pending": []}
