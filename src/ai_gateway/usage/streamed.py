"""What a stream has sent, counted when the provider reports no usage for it.

A stream that ends before the provider's usage arrives (the client left, the upstream cut it,
an error) was still generated, and providers bill it. The gateway then charges the prompt (the
messages and tools it sent, counted as `/v1/tokens/count` would) and the completion it relayed
(the text of every delta: content, refusals, reasoning, tool-call names and arguments), both
with the gateway's token counter (`usage/tokens.py`): exact for OpenAI's encodings, a
deliberately high estimate for other models. The record says so (`usage_estimated`).

Bounded: text is kept until `FOLD_CHARS` characters have arrived, then counted and let go, so a
long stream holds at most that much and each count is a few milliseconds of work. Counting in
pieces may add a token or two at each fold (a word or its leading space cut apart): it never
under-counts in practice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ai_gateway.usage.tokens import TokenCounter

FOLD_CHARS = 64 * 1024
_DELTA_TEXT = ("content", "refusal", "reasoning_content", "reasoning")


class StreamTally:
    """Fed every chunk the upstream sent (OpenAI chat chunk shape); `usage()` at the end."""

    __slots__ = ("_body", "_chars", "_counter", "_model", "_pieces", "_provider", "_tokens")

    def __init__(
        self, counter: TokenCounter, provider: str, model: str, body: Mapping[str, Any]
    ) -> None:
        self._counter = counter
        self._provider = provider
        self._model = model
        self._body = body
        self._pieces: list[str] = []
        self._chars = 0
        self._tokens = 0

    def feed(self, chunk: Mapping[str, Any]) -> None:
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                continue
            for name in _DELTA_TEXT:
                text = delta.get(name)
                if isinstance(text, str) and text:
                    self._add(text)
            for call in delta.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    for name in ("name", "arguments"):
                        text = function.get(name)
                        if isinstance(text, str) and text:
                            self._add(text)

    def _add(self, text: str) -> None:
        self._pieces.append(text)
        self._chars += len(text)
        if self._chars >= FOLD_CHARS:
            self._fold()

    def _fold(self) -> None:
        if self._pieces:
            joined = "".join(self._pieces)
            self._tokens += self._counter.count_text(self._provider, self._model, [joined]).tokens
            self._pieces.clear()
            self._chars = 0

    def completion_tokens(self) -> int:
        self._fold()
        return self._tokens

    def prompt_tokens(self) -> int:
        messages = self._body.get("messages")
        tools = self._body.get("tools")
        if not isinstance(messages, Sequence):
            return 0
        try:
            return self._counter.count_messages(
                self._provider,
                self._model,
                [m for m in messages if isinstance(m, Mapping)],
                tools if isinstance(tools, Sequence) else None,
            ).tokens
        except Exception:  # a tokenizer limit: this runs as a request ends, it must not fail
            return math.ceil(len(repr(messages).encode()) / 4)

    def usage(self) -> dict[str, int]:
        """An OpenAI-style usage object of the counted tokens."""
        prompt, completion = self.prompt_tokens(), self.completion_tokens()
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
