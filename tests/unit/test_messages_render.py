"""The chain's answer and stream as Messages API JSON and events (messages/response.py,
messages/stream.py): translated from OpenAI shapes, or relayed from Anthropic's own with what a
stage changed put in. Every event is checked against the `anthropic` SDK's types, and the SDK's
own accumulator rebuilds the message from them."""

from __future__ import annotations

import copy
from typing import Any

from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent
from pydantic import TypeAdapter

from ai_gateway.messages.response import to_message
from ai_gateway.messages.stream import MessageEvents
from ai_gateway.providers.native import NATIVE_KEY

EVENT = TypeAdapter(RawMessageStreamEvent)


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "gpt-x",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


def render(chunks: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], Message]:
    """The events for `chunks` (each validated), and the message the SDK accumulates."""
    events = MessageEvents("asked")
    out: list[dict[str, Any]] = []
    for c in chunks:
        out += events.feed(c)
    out += events.close()
    snapshot: Message | None = None
    buffers: dict[int, bytes] = {}
    for event in out:
        if event["type"] == "ping":
            continue
        parsed = EVENT.validate_python(event)
        snapshot = accumulate_event(event=parsed, current_snapshot=snapshot, json_bufs=buffers)  # type: ignore[arg-type]
    assert snapshot is not None
    return out, snapshot


def test_translated_stream_text_tools_and_reasoning() -> None:
    call = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "f", "arguments": ""},
    }
    chunks = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"reasoning_content": "Let me "}),
        chunk({"reasoning_content": "think."}),
        chunk({"content": "Calling "}),
        chunk({"content": "f."}),
        chunk({"tool_calls": [call]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": " 1}"}}]}),
        chunk({}, "tool_calls"),
        {**chunk({}), "choices": [], "usage": {"prompt_tokens": 30, "completion_tokens": 9,
                                               "prompt_tokens_details": {"cached_tokens": 10}}},
    ]  # fmt: skip
    events, message = render(chunks)
    assert [e["type"] for e in events[:2]] == ["message_start", "ping"]
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
    assert message.content[0].thinking == "Let me think."  # type: ignore[union-attr]
    assert message.content[1].text == "Calling f."  # type: ignore[union-attr]
    assert message.content[2].input == {"a": 1}  # type: ignore[union-attr]
    assert message.stop_reason == "tool_use"
    usage = message.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.output_tokens) == (20, 10, 9)
    starts = [e["index"] for e in events if e["type"] == "content_block_start"]
    stops = [e["index"] for e in events if e["type"] == "content_block_stop"]
    assert starts == stops == [0, 1, 2]


def anthropic_stream() -> list[dict[str, Any]]:
    """What the Anthropic adapter yields for a thinking + text answer: OpenAI chunks, each with
    the events that made it."""
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 1},
        },
    }  # fmt: skip

    def block(i: int, b: dict[str, Any]) -> dict[str, Any]:
        return {"type": "content_block_start", "index": i, "content_block": b}

    def delta(i: int, d: dict[str, Any]) -> dict[str, Any]:
        return {"type": "content_block_delta", "index": i, "delta": d}

    def stop(i: int) -> dict[str, Any]:
        return {"type": "content_block_stop", "index": i}

    end = {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
           "usage": {"output_tokens": 7}}  # fmt: skip
    return [
        {**chunk({"role": "assistant", "content": ""}), NATIVE_KEY: [start]},
        {
            **chunk({"reasoning_content": "Mail jane@x.io"}),
            NATIVE_KEY: [
                block(0, {"type": "thinking", "thinking": "", "signature": ""}),
                {"type": "ping"},
                delta(0, {"type": "thinking_delta", "thinking": "Mail jane@x.io"}),
            ],
        },
        {
            **chunk({"content": "Hello "}),
            NATIVE_KEY: [
                delta(0, {"type": "signature_delta", "signature": "SIG"}),
                stop(0),
                block(1, {"type": "text", "text": ""}),
                delta(1, {"type": "text_delta", "text": "Hello "}),
            ],
        },
        {
            **chunk({"content": "there"}),
            NATIVE_KEY: [delta(1, {"type": "text_delta", "text": "there"})],
        },
        {**chunk({}, "stop"), NATIVE_KEY: [stop(1), end]},
        {**chunk({}), "choices": [], "usage": {}, NATIVE_KEY: [{"type": "message_stop"}]},
    ]


def upstream_events(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for c in chunks for e in c[NATIVE_KEY]]


def test_relayed_stream_is_the_upstreams() -> None:
    chunks = anthropic_stream()
    events, message = render(copy.deepcopy(chunks))
    assert events == upstream_events(chunks)
    assert message.content[0].signature == "SIG"  # type: ignore[union-attr]
    assert message.usage.output_tokens == 7


def test_relayed_stream_takes_the_views_text() -> None:
    """Content rules redacted the thinking and held back the text's last word, released later
    (with the next field, or with the finish): each lands in its block before the block ends."""
    chunks = anthropic_stream()
    chunks[1]["choices"][0]["delta"] = {"reasoning_content": "Mail "}  # held back
    chunks[2]["choices"][0]["delta"] = {"content": "Hello ", "reasoning_content": "[REDACTED]"}
    chunks[3]["choices"][0]["delta"] = {"content": ""}  # held back
    chunks[4]["choices"][0]["delta"] = {"content": "there"}  # released with the finish
    events, message = render(chunks)
    assert message.content[0].thinking == "Mail [REDACTED]"  # type: ignore[union-attr]
    assert message.content[0].signature == "SIG"  # type: ignore[union-attr]
    assert message.content[1].text == "Hello there"  # type: ignore[union-attr]
    assert "jane" not in str(events)
    kinds = [(e["type"], e.get("delta", {}).get("type")) for e in events]
    assert kinds.index(("content_block_delta", "thinking_delta"), 3) < kinds.index(
        ("content_block_delta", "signature_delta")
    )


def test_relayed_stream_gives_late_text_a_block_of_its_own() -> None:
    """Text a stage sends after its block ended (a tail chunk without events of its own)."""
    chunks = anthropic_stream()
    end, stop_event = chunks[4][NATIVE_KEY][1], chunks[5][NATIVE_KEY][0]
    chunks[4] = {**chunk({}), NATIVE_KEY: chunks[4][NATIVE_KEY][:1]}  # the text block ends
    chunks[5] = chunk({"content": " (tail)"})  # no events
    chunks.append({**chunk({}, "stop"), NATIVE_KEY: [end, stop_event]})
    events, message = render(chunks)
    assert [b.type for b in message.content] == ["thinking", "text", "text"]
    assert message.content[2].text == " (tail)"  # type: ignore[union-attr]
    starts = [e["index"] for e in events if e["type"] == "content_block_start"]
    assert starts == [0, 1, 2]


def test_json_translated_and_native() -> None:
    completion = {
        "id": "chatcmpl-9",
        "model": "gpt-x",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Sure.",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"x": 2}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3},
    }
    message = Message.model_validate(to_message(completion, "asked"))
    assert message.id == "msg_chatcmpl-9"
    assert [b.type for b in message.content] == ["text", "tool_use"]
    assert message.content[1].input == {"x": 2}  # type: ignore[union-attr]
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (5, 3)

    native = {
        "id": "msg_2", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [
            {"type": "thinking", "thinking": "mail a@b.io", "signature": "S"},
            {"type": "text", "text": "Write to a@b.io", "citations": [{"type": "char_location"}]},
        ],
        "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 4, "output_tokens": 6, "cache_read_input_tokens": 2},
    }  # fmt: skip
    view = {"role": "assistant", "content": "Write to a@b.io", "reasoning_content": "mail a@b.io"}
    answer = {"choices": [{"message": view, "finish_reason": "stop"}], NATIVE_KEY: native}
    assert to_message(answer, "asked") == native  # nothing changed: as Anthropic sent it
    view["content"] = "Write to [R]"
    view["reasoning_content"] = "mail [R]"
    patched = to_message(answer, "asked")
    assert patched["content"] == [
        {"type": "thinking", "thinking": "mail [R]", "signature": "S"},
        {"type": "text", "text": "Write to [R]"},
    ]
    assert patched["usage"] == native["usage"]
    answer["choices"][0]["finish_reason"] = "content_filter"  # type: ignore[index]
    assert to_message(answer, "asked")["stop_reason"] == "refusal"
