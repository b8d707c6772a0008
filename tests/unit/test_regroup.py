"""Response chunking (streaming/regroup.py): text regrouped into lines or sentences, nothing
reordered or lost, nothing held longer than the delay, the stream read closed when it is."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from ai_gateway.streaming.regroup import Regrouper, regrouped


def text(content: str, index: int = 0) -> dict[str, Any]:
    choice = {"index": index, "delta": {"content": content}, "finish_reason": None}
    return {"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": [choice]}


def contents(chunks: list[dict[str, Any]]) -> list[str]:
    return [c["choices"][0]["delta"].get("content", "") for c in chunks]


def test_sentences_are_sent_whole_and_the_rest_at_the_end() -> None:
    regrouper = Regrouper("sentence")
    sent: list[dict[str, Any]] = []
    for piece in ["Hel", "lo there", ". How ", "are you? I am", " fine"]:
        sent += regrouper.feed(text(piece), now=0.0)
    assert contents(sent) == ["Hello there.", " How are you?"]
    finish = {"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    sent += regrouper.feed(finish, now=0.0)
    assert contents(sent)[2:] == [" I am fine", ""]
    assert sent[-1] is finish
    assert sent[0]["id"] == "c1"
    assert sent[0]["object"] == "chat.completion.chunk"


def test_lines_and_choices_are_kept_apart() -> None:
    regrouper = Regrouper("line")
    out = regrouper.feed(text("a\nb", 0), now=0.0) + regrouper.feed(text("x\ny\nz", 1), now=0.0)
    assert [(c["choices"][0]["index"], c["choices"][0]["delta"]["content"]) for c in out] == [
        (0, "a\n"),
        (1, "x\ny\n"),
    ]
    assert {c["choices"][0]["index"]: c["choices"][0]["delta"]["content"] for c in
            regrouper.flush()} == {0: "b", 1: "z"}  # fmt: skip


def test_a_chunk_that_is_not_only_text_passes_after_what_is_held() -> None:
    regrouper = Regrouper("sentence")
    role = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
    assert regrouper.feed(role, now=0.0) == [role]
    regrouper.feed(text("half a sentence"), now=0.0)
    call = {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0}]}}]}
    usage = {"choices": [], "usage": {"total_tokens": 3}}
    out = regrouper.feed(call, now=0.0)
    assert contents(out[:1]) == ["half a sentence"]
    assert out[1] is call
    assert regrouper.feed(usage, now=0.0) == [usage]


async def stream(pieces: list[tuple[float, str]]) -> AsyncGenerator[dict[str, Any], None]:
    for delay, piece in pieces:
        await asyncio.sleep(delay)
        yield text(piece)


async def test_nothing_is_held_longer_than_the_delay() -> None:
    arrived: list[tuple[float, str]] = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    pieces = [(0.0, "no sentence end "), (0.0, "yet"), (0.5, ". Done.")]
    async for chunk in regrouped(stream(pieces), "sentence", max_delay_s=0.1):
        arrived.append((loop.time() - start, chunk["choices"][0]["delta"]["content"]))
    assert [piece for _, piece in arrived] == ["no sentence end yet", ".", " Done."]
    assert 0.08 <= arrived[0][0] < 0.4  # sent at the delay, long before the next piece
    assert arrived[1][0] >= 0.5


async def test_closing_it_closes_the_stream_it_reads() -> None:
    closed = asyncio.Event()

    async def endless() -> AsyncGenerator[dict[str, Any], None]:
        try:
            while True:
                yield text("word ")
                await asyncio.sleep(0.01)
        finally:
            closed.set()

    reading = regrouped(endless(), "sentence", max_delay_s=0.05)
    assert contents([await anext(reading)])[0].startswith("word")
    await reading.aclose()
    assert closed.is_set()


@pytest.mark.parametrize("mode", ["line", "sentence"])
async def test_the_text_is_the_same_whatever_the_mode(mode: str) -> None:
    words = ["One.", "Two", "lines\nthree?", "Four!", "五。六\n"]
    pieces = [(0.0, w + " ") for w in words]
    raw = "".join(piece for _, piece in pieces)
    got = [c async for c in regrouped(stream(pieces), mode, max_delay_s=1.0)]  # type: ignore[arg-type]
    assert "".join(contents(got)) == raw
