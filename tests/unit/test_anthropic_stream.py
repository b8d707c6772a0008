"""Anthropic event stream -> OpenAI chunks: raw SSE bytes, split at awkward places, through the
real decoder and the translator."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from typing import Any

import pytest

from ai_gateway.errors import (
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRateLimitError,
    UpstreamUnavailableError,
)
from ai_gateway.providers.anthropic_stream import StreamTranslator
from ai_gateway.streaming.sse import SSEDecoder

WHERE = "anthropic, deployment 'claude/0'"
KEY = "sk-ant-api03-secret-key-value-0000"


def sse(kind: str, data: dict[str, Any], newline: str = "\n") -> bytes:
    return f"event: {kind}{newline}data: {json.dumps(data)}{newline}{newline}".encode()


def start(**usage: int) -> bytes:
    message = {
        "id": "msg_abc",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-20250514",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 25, "output_tokens": 1, **usage},
    }
    return sse("message_start", {"type": "message_start", "message": message})


def block_start(index: int, block: dict[str, Any]) -> bytes:
    return sse(
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": block},
    )


def delta(index: int, body: dict[str, Any]) -> bytes:
    return sse(
        "content_block_delta", {"type": "content_block_delta", "index": index, "delta": body}
    )


def text(index: int, value: str) -> bytes:
    return delta(index, {"type": "text_delta", "text": value})


def args(index: int, fragment: str) -> bytes:
    return delta(index, {"type": "input_json_delta", "partial_json": fragment})


def block_stop(index: int) -> bytes:
    return sse("content_block_stop", {"type": "content_block_stop", "index": index})


def end(stop_reason: str = "end_turn", **usage: int) -> bytes:
    message_delta = {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": None},
        "usage": {"output_tokens": 12, **usage},
    }
    return sse("message_delta", message_delta) + sse("message_stop", {"type": "message_stop"})


PING = sse("ping", {"type": "ping"})


def splits(raw: bytes, how: str) -> Iterable[bytes]:
    if how == "whole":
        return [raw]
    if how == "bytewise":
        return [raw[i : i + 1] for i in range(len(raw))]
    rng = random.Random(len(raw))  # deterministic, varied cut points
    cuts = sorted(rng.sample(range(1, len(raw)), min(40, len(raw) - 1)))
    return [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]


def translate(
    raw: bytes, how: str = "whole", response_tool: str | None = None
) -> tuple[list[dict[str, Any]], StreamTranslator]:
    decoder = SSEDecoder()
    translator = StreamTranslator(WHERE, response_tool, (KEY,))
    chunks = []
    for piece in splits(raw, how):
        for event in decoder.feed(piece):
            chunks.extend(translator.feed(event))
    return chunks, translator


def deltas(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c["choices"][0]["delta"] for c in chunks if c["choices"]]


@pytest.mark.parametrize("how", ["whole", "bytewise", "random"])
def test_text_stream(how: str) -> None:
    raw = (
        start(cache_read_input_tokens=100, cache_creation_input_tokens=5)
        + block_start(0, {"type": "text", "text": ""})
        + PING
        + text(0, "Grüße, ")
        + text(0, "wörld 🌍")
        + block_stop(0)
        + end()
    )
    chunks, translator = translate(raw, how)
    assert translator.finished
    assert {(c["id"], c["created"], c["model"]) for c in chunks} == {
        ("msg_abc", chunks[0]["created"], "claude-sonnet-4-20250514")
    }
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert deltas(chunks) == [
        {"role": "assistant", "content": ""},
        {"content": "Grüße, "},
        {"content": "wörld 🌍"},
        {},
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None, None, None, "stop"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 130,
        "completion_tokens": 12,
        "total_tokens": 142,
        "prompt_tokens_details": {"cached_tokens": 100},
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 5,
    }


def test_crlf_line_endings() -> None:
    raw = sse(
        "message_start", {"type": "message_start", "message": {"id": "m", "model": "c"}}, "\r\n"
    ) + sse("message_stop", {"type": "message_stop"}, "\r\n")
    chunks, translator = translate(raw, "bytewise")
    assert translator.finished
    assert len(chunks) == 2


@pytest.mark.parametrize("how", ["whole", "bytewise", "random"])
def test_tool_call_stream_passes_each_argument_fragment_on(how: str) -> None:
    raw = (
        start()
        + block_start(0, {"type": "text", "text": ""})
        + text(0, "Checking both.")
        + block_stop(0)
        + block_start(1, {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}})
        + args(1, "")
        + args(1, '{"ci')
        + args(1, 'ty": "Par')
        + args(1, 'is"}')
        + block_stop(1)
        + block_start(2, {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}})
        + args(2, "{}")
        + block_stop(2)
        + end("tool_use")
    )
    chunks, _ = translate(raw, how)
    assert deltas(chunks) == [
        {"role": "assistant", "content": ""},
        {"content": "Checking both."},
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Par'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": 'is"}'}}]},
        {
            "tool_calls": [
                {
                    "index": 1,
                    "id": "toolu_2",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]},
        {},
    ]
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_thinking_blocks_are_skipped() -> None:
    raw = (
        start()
        + block_start(0, {"type": "thinking", "thinking": ""})
        + delta(0, {"type": "thinking_delta", "thinking": "Let me think"})
        + delta(0, {"type": "signature_delta", "signature": "EqQB"})
        + block_stop(0)
        + block_start(1, {"type": "redacted_thinking", "data": "abc"})
        + block_stop(1)
        + block_start(2, {"type": "text", "text": ""})
        + text(2, "Answer")
        + delta(2, {"type": "citations_delta", "citation": {"type": "char_location"}})
        + block_stop(2)
        + end()
    )
    chunks, _ = translate(raw)
    assert deltas(chunks) == [{"role": "assistant", "content": ""}, {"content": "Answer"}, {}]


def test_response_format_tool_streams_as_content() -> None:
    raw = (
        start()
        + block_start(0, {"type": "tool_use", "id": "t", "name": "json_response", "input": {}})
        + args(0, '{"answer"')
        + args(0, ": 42}")
        + block_stop(0)
        + end("tool_use")
    )
    chunks, _ = translate(raw, response_tool="json_response")
    assert deltas(chunks) == [
        {"role": "assistant", "content": ""},
        {"content": '{"answer"'},
        {"content": ": 42}"},
        {},
    ]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("refusal", "content_filter"),
    ],
)
def test_every_stop_reason(stop_reason: str, finish_reason: str) -> None:
    chunks, _ = translate(start() + end(stop_reason))
    assert chunks[-2]["choices"][0]["finish_reason"] == finish_reason


def test_message_delta_usage_is_cumulative_and_wins() -> None:
    raw = start(input_tokens=3) + end(input_tokens=30, cache_read_input_tokens=4, output_tokens=9)
    chunks, _ = translate(raw)
    usage = chunks[-1]["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (34, 9)


def test_a_stream_cut_before_message_stop_is_not_finished() -> None:
    raw = start() + block_start(0, {"type": "text", "text": ""}) + text(0, "Hel")
    chunks, translator = translate(raw, "bytewise")
    assert not translator.finished
    assert deltas(chunks)[-1] == {"content": "Hel"}


@pytest.mark.parametrize(
    ("kind", "error_type", "status"),
    [
        ("overloaded_error", UpstreamUnavailableError, 503),
        ("rate_limit_error", UpstreamRateLimitError, 429),
        ("api_error", UpstreamError, 502),
    ],
)
def test_error_events_raise(kind: str, error_type: type[UpstreamError], status: int) -> None:
    error = {"type": "error", "error": {"type": kind, "message": f"Trouble for {KEY}"}}
    raw = (
        start() + block_start(0, {"type": "text", "text": ""}) + text(0, "Hi") + sse("error", error)
    )
    with pytest.raises(UpstreamError) as info:
        translate(raw, "bytewise")
    assert type(info.value) is error_type
    assert info.value.status == status
    assert kind in info.value.message
    assert "deployment 'claude/0'" in info.value.message
    assert KEY not in info.value.message


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (block_start(0, {"type": "text", "text": ""}), "before 'message_start'"),
        (start() + text(3, "x"), "never started"),
        (b"event: message_start\ndata: {not json\n\n", "not JSON"),
        (b"data: [1, 2]\n\n", "not a JSON object"),
        (sse("message_start", {"type": "message_start"}), "without a message"),
    ],
)
def test_malformed_streams_are_protocol_errors(raw: bytes, problem: str) -> None:
    with pytest.raises(UpstreamProtocolError) as info:
        translate(raw)
    assert problem in info.value.message


def test_unknown_events_and_blocks_are_ignored() -> None:
    raw = (
        start()
        + sse("future_event", {"type": "future_event", "x": 1})
        + block_start(0, {"type": "server_tool_use", "id": "s", "name": "web_search"})
        + args(0, '{"q": 1}')
        + block_stop(0)
        + end()
    )
    chunks, translator = translate(raw)
    assert translator.finished
    assert deltas(chunks) == [{"role": "assistant", "content": ""}, {}]


def test_events_after_message_stop_are_ignored() -> None:
    chunks, _ = translate(start() + end() + text(0, "late"))
    assert chunks[-1]["choices"] == []
