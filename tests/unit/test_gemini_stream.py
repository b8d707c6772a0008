"""Raw ``streamGenerateContent?alt=sse`` bytes -> OpenAI chunks, through the real SSE decoder."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest

from ai_gateway import errors
from ai_gateway.providers.gemini_stream import translate_sse
from ai_gateway.routing.deployments import Deployment

KEY = "AIzaSyCANARYcanary-0123456789abcdef"
DEP = Deployment(
    id="gem/0", group="gem", provider="gemini", model="gemini-2.5-flash", api_base="u", api_key=KEY
)


def frame(event: dict[str, Any], newline: str = "\r\n") -> bytes:
    return f"data: {json.dumps(event)}{newline}{newline}".encode()


def cand(*parts: dict[str, Any], finish: str | None = None, index: int = 0) -> dict[str, Any]:
    result: dict[str, Any] = {"content": {"role": "model", "parts": list(parts)}, "index": index}
    if finish:
        result["finishReason"] = finish
    return result


TAIL = {"modelVersion": "gemini-2.5-flash-002", "responseId": "resp42"}
EVENTS = [
    {"candidates": [cand({"text": "The answer", "thought": True})], **TAIL},
    {"candidates": [cand({"text": "Hel"})], "usageMetadata": {"promptTokenCount": 7}, **TAIL},
    {"candidates": [cand({"text": "lo, "})], **TAIL},
    {
        "candidates": [
            cand(
                {"text": "wörld ☕"},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
            )
        ],
        **TAIL,
    },
    {"candidates": [cand({"functionCall": {"name": "get_time", "args": {}}})], **TAIL},
    {
        "candidates": [cand(finish="STOP")],
        "usageMetadata": {
            "promptTokenCount": 7,
            "candidatesTokenCount": 12,
            "thoughtsTokenCount": 5,
            "cachedContentTokenCount": 3,
        },
        **TAIL,
    },
]


async def pieces(data: bytes, cuts: Iterable[int]) -> AsyncIterator[bytes]:
    start = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        yield data[start:cut]
        start = cut


async def collect(body: AsyncIterator[bytes]) -> list[dict[str, Any]]:
    return [chunk async for chunk in translate_sse(DEP, body)]


def without_ids(chunks: list[dict[str, Any]]) -> str:
    """The chunks with generated ids and clock readings blanked, for comparing two runs."""
    text = json.dumps([{**chunk, "created": 0} for chunk in chunks])
    for chunk in chunks:
        for choice in chunk["choices"]:
            for call in choice["delta"].get("tool_calls", []):
                text = text.replace(call["id"], "call_ID")
    return text


def deltas(chunks: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str | None]]:
    return [(c["delta"], c["finish_reason"]) for chunk in chunks for c in chunk["choices"]]


async def test_a_whole_stream() -> None:
    chunks = await collect(pieces(b"".join(frame(e) for e in EVENTS), []))
    got = deltas(chunks)
    weather, clock = (d["tool_calls"][0] for d, _ in got[3:5])
    assert got == [
        ({"role": "assistant", "content": ""}, None),  # the thought-only event starts the choice
        ({"content": "Hel"}, None),
        ({"content": "lo, "}, None),
        ({"content": "wörld ☕", "tool_calls": [weather]}, None),
        ({"tool_calls": [clock]}, None),
        ({}, "tool_calls"),
    ]
    assert weather["index"] == 0
    assert clock["index"] == 1
    assert weather["id"].startswith("call_")
    assert weather["id"] != clock["id"]
    assert weather["type"] == "function"
    assert weather["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert clock["function"] == {"name": "get_time", "arguments": "{}"}
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 7,
        "completion_tokens": 17,
        "total_tokens": 24,
        "prompt_tokens_details": {"cached_tokens": 3},
        "completion_tokens_details": {"reasoning_tokens": 5},
    }
    assert {(c["id"], c["created"], c["model"], c["object"]) for c in chunks} == {
        ("chatcmpl-resp42", chunks[0]["created"], "gemini-2.5-flash-002", "chat.completion.chunk")
    }


async def test_every_split_point_and_both_line_endings_give_the_same_chunks() -> None:
    expected = without_ids(await collect(pieces(b"".join(frame(e) for e in EVENTS), [])))
    for newline in ("\r\n", "\n", "\r"):
        data = b"".join(frame(e, newline) for e in EVENTS)
        for cut in range(len(data) + 1):
            assert without_ids(await collect(pieces(data, [cut]))) == expected, (newline, cut)
    # One byte at a time splits every CRLF pair and every multi-byte UTF-8 sequence.
    data = b"".join(frame(e) for e in EVENTS)
    assert without_ids(await collect(pieces(data, range(len(data))))) == expected


async def test_chunks_leave_as_soon_as_their_event_arrives() -> None:
    sent: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        for number, event in enumerate(EVENTS[1:]):
            sent.append(number)
            yield frame(event)

    stream = translate_sse(DEP, body())
    first = await anext(stream)
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "Hel"}
    assert sent == [0]
    await stream.aclose()


async def test_two_candidates_finish_separately() -> None:
    events = [
        {"candidates": [cand({"text": "a"}), cand({"text": "b"}, index=1)]},
        {"candidates": [cand({"text": "!"}, finish="MAX_TOKENS"), cand({"text": "?"}, index=1)]},
        {"candidates": [cand({"text": "."}, finish="SAFETY", index=1)]},
    ]
    chunks = await collect(pieces(b"".join(frame(e) for e in events), []))
    choices = [(c["index"], c["delta"], c["finish_reason"]) for k in chunks for c in k["choices"]]
    assert choices == [
        (0, {"role": "assistant", "content": "a"}, None),
        (1, {"role": "assistant", "content": "b"}, None),
        (0, {"content": "!"}, None),
        (1, {"content": "?"}, None),
        (0, {}, "length"),
        (1, {"content": "."}, None),
        (1, {}, "content_filter"),
    ]
    assert chunks[-1]["usage"]["total_tokens"] == 0  # no usageMetadata at all: zeros
    assert chunks[0]["model"] == DEP.model
    assert chunks[0]["id"].startswith("chatcmpl-")


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("RECITATION", "content_filter"),
        ("OTHER", "stop"),
    ],
)
async def test_finish_reasons_in_a_stream(reason: str, expected: str) -> None:
    data = frame({"candidates": [cand({"text": "x"}, finish=reason)]})
    chunks = await collect(pieces(data, []))
    assert deltas(chunks)[-1] == ({}, expected)


async def test_an_error_event_raises_after_what_was_sent() -> None:
    error = {"error": {"code": 503, "message": f"overloaded {KEY}", "status": "UNAVAILABLE"}}
    data = frame(EVENTS[1]) + frame(error)
    got: list[dict[str, Any]] = []

    async def drain() -> None:
        async for chunk in translate_sse(DEP, pieces(data, [])):
            got.append(chunk)

    with pytest.raises(errors.UpstreamUnavailableError) as info:
        await drain()
    assert deltas(got) == [({"role": "assistant", "content": "Hel"}, None)]
    assert "overloaded" in info.value.message
    assert KEY not in info.value.message


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"},
            errors.UpstreamRateLimitError,
        ),
        ({"message": "boom", "status": "INTERNAL"}, errors.UpstreamError),
        ({"message": "bad", "status": "INVALID_ARGUMENT"}, errors.UpstreamBadRequestError),
        ("plain text", errors.UpstreamError),
    ],
)
async def test_error_events_map_by_code_or_status(error: object, expected: type) -> None:
    with pytest.raises(errors.UpstreamError) as info:
        await collect(pieces(frame({"error": error}), []))
    assert type(info.value) is expected


@pytest.mark.parametrize(
    "events",
    [
        [],
        EVENTS[:3],
        [{"usageMetadata": {"promptTokenCount": 3}}],
        [{"candidates": [cand({"text": "a"}, finish="STOP"), cand({"text": "b"}, index=1)]}],
    ],
)
async def test_a_stream_that_never_finishes_is_a_protocol_error(events: list[Any]) -> None:
    with pytest.raises(errors.UpstreamProtocolError) as info:
        await collect(pieces(b"".join(frame(e) for e in events), []))
    assert "finishReason" in info.value.message


async def test_a_cut_off_last_event_is_a_protocol_error() -> None:
    data = b"".join(frame(e) for e in EVENTS)
    with pytest.raises(errors.UpstreamProtocolError):
        await collect(pieces(data[:-10], []))


async def test_a_blocked_prompt_raises_before_any_chunk() -> None:
    blocked = {
        "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
        "usageMetadata": {"promptTokenCount": 4},
    }
    stream = translate_sse(DEP, pieces(frame(blocked), []))
    with pytest.raises(errors.ContentFilteredError) as info:
        await anext(stream)
    assert "SAFETY" in info.value.message
    assert info.value.status == 400


@pytest.mark.parametrize("data", [b"data: {not json\r\n\r\n", b"data: [1, 2]\r\n\r\n"])
async def test_events_that_are_not_json_objects(data: bytes) -> None:
    with pytest.raises(errors.UpstreamProtocolError):
        await collect(pieces(data, []))


async def test_comments_and_blank_events_are_ignored() -> None:
    data = b": keep-alive\r\n\r\n\r\n" + frame(
        {"candidates": [cand({"text": "ok"}, finish="STOP")]}
    )
    chunks = await collect(pieces(data, []))
    assert deltas(chunks) == [({"role": "assistant", "content": "ok"}, None), ({}, "stop")]
