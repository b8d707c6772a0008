"""Response chunking for display (docs/api.md, "Response chunking"): a chat stream's text deltas
regrouped into whole lines or whole sentences, for SSE and the WebSocket alike, without holding
text back longer than `max_delay_ms`.

`Regrouper` is the rule, with no I/O: it takes the stream's chunks one by one and gives back the
chunks to send. A chunk whose choices carry only text (`delta.content`, nothing else: no role,
tool call, finish reason or usage) is held, per choice; the text up to the last line end
(`line`) or sentence end (`sentence`) held so far is sent at once, in a chunk shaped like the
one that brought it. Any other chunk first sends what is held (in the order it came), then
itself, so nothing is reordered and the stream's end carries all the text.

`regrouped()` runs it over an async stream, sending what is held once it has waited
`max_delay_ms` since the first of it arrived. Closing it closes the stream it reads.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Literal

Chunk = dict[str, Any]
Mode = Literal["raw", "line", "sentence"]

# A full stop, question or exclamation mark (closing quotes or brackets after it) before a space;
# a CJK full stop, question or exclamation mark; a line end.
_SENTENCE_END = re.compile("[.!?\u2026][\"')\\]]*(?=\\s)|[\u3002\uff01\uff1f]|\n")


def _cut(text: str, mode: Mode) -> int:
    """How much of `text` may be sent now: up to its last line or sentence end."""
    if mode == "line":
        return text.rfind("\n") + 1
    last = 0
    for match in _SENTENCE_END.finditer(text):
        last = match.end()
    return last


_CHOICE_KEYS = frozenset({"index", "delta", "logprobs", "finish_reason"})


def _text_only(chunk: Chunk) -> bool:
    if chunk.get("usage"):
        return False
    choices = chunk.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    for choice in choices:
        if not isinstance(choice, dict) or choice.get("finish_reason") is not None:
            return False
        delta = choice.get("delta")
        if not isinstance(delta, dict) or set(delta) != {"content"}:
            return False
        if not isinstance(delta["content"], str) or set(choice) - _CHOICE_KEYS:
            return False
        if choice.get("logprobs") is not None:
            return False
    return True


class Regrouper:
    def __init__(self, mode: Mode) -> None:
        self._mode = mode
        self._held: dict[int, str] = {}  # choice index -> text held
        self._shape: Chunk | None = None  # the last text chunk: the held text is sent like it
        self.since: float | None = None  # when the oldest held text arrived

    @property
    def holding(self) -> bool:
        return any(self._held.values())

    def feed(self, chunk: Chunk, now: float) -> list[Chunk]:
        if not _text_only(chunk):
            return [*self.flush(), chunk]
        self._shape = chunk
        out: list[Chunk] = []
        for choice in chunk["choices"]:
            index = choice.get("index", 0)
            held = self._held.get(index, "") + choice["delta"]["content"]
            cut = _cut(held, self._mode)
            if cut:
                out.append(self._chunk(index, held[:cut]))
            self._held[index] = held[cut:]
        if self.holding:
            self.since = self.since if self.since is not None else now
        else:
            self.since = None
        return out

    def flush(self) -> list[Chunk]:
        """Everything held, a chunk per choice."""
        out = [self._chunk(index, text) for index, text in self._held.items() if text]
        self._held.clear()
        self.since = None
        return out

    def _chunk(self, index: int, text: str) -> Chunk:
        shape = self._shape or {}
        choice = {
            "index": index,
            "delta": {"content": text},
            "logprobs": None,
            "finish_reason": None,
        }
        return {**shape, "choices": [choice]}


async def regrouped(
    chunks: AsyncIterator[Chunk], mode: Mode, max_delay_s: float
) -> AsyncGenerator[Chunk, None]:
    regrouper = Regrouper(mode)
    waiting: asyncio.Future[Chunk] | None = None
    try:
        while True:
            if waiting is None:
                waiting = asyncio.ensure_future(anext(chunks))
            timeout = None
            if regrouper.since is not None:
                timeout = max(0.0, regrouper.since + max_delay_s - time.monotonic())
            done, _ = await asyncio.wait({waiting}, timeout=timeout)
            if not done:  # held long enough: send it, keep waiting for the same chunk
                for chunk in regrouper.flush():
                    yield chunk
                continue
            try:
                chunk = waiting.result()
            except StopAsyncIteration:
                break
            finally:
                waiting = None
            for out in regrouper.feed(chunk, time.monotonic()):
                yield out
        for chunk in regrouper.flush():
            yield chunk
    finally:
        if waiting is not None and not waiting.done():
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
