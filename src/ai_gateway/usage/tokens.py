"""Offline token counting: exact for OpenAI models whose encoding ships in a package, a
documented, deliberately conservative estimate for everything else.

Exact: `o200k_base` (gpt-4o, gpt-4.1, gpt-4.5, gpt-5, o1/o3/o4 families) and `cl100k_base`
(gpt-4, gpt-3.5, text-embedding-3 and ada-002), from the `bpe-openai` package's data files; chat
messages follow OpenAI's published framing (3 tokens per message, 1 more for a name, 3 to prime
the reply). Content the framing does not cover exactly (images, tool definitions) makes the count
an estimate.

Estimate (Anthropic, Gemini, unknown models): for each text, the larger of UTF-8 bytes / 4 and
o200k tokens x 1.2, plus 4 tokens per message. Claude's and Gemini's tokenizers are not public;
their counts for the same text run close to or somewhat above o200k's, so this over-counts
typical English by about 20-30%, and the byte term keeps dense text (code, CJK) from being
under-counted. It is used for context-window and limit checks, where
counting high is the safe side; billing always uses the provider's reported usage.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

IMAGE_TOKENS_ESTIMATE = 1105  # OpenAI's high-detail cost of a 1024x1024 image (4 tiles + base)
IMAGE_TOKENS_LOW = 85
ESTIMATE_MESSAGE_OVERHEAD = 4
TOOL_DEFINITIONS_OVERHEAD = 12

_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")
_CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "gpt-35", "text-embedding-3", "text-embedding-ada-002")


class _Encoding(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...


@dataclass(frozen=True, slots=True)
class TokenCount:
    tokens: int
    exact: bool
    method: str  # the encoding name, or "estimate"


def encoding_for(provider: str, model: str) -> str | None:
    """The tiktoken-compatible encoding of an OpenAI model, or None when it is not known."""
    if provider != "openai":
        return None
    name = model.rsplit("/", 1)[-1]
    if name.startswith(_O200K_PREFIXES):
        return "o200k_base"
    if name.startswith(_CL100K_PREFIXES):
        return "cl100k_base"
    return None


class TokenCounter:
    """Loads each encoding once, on first use (not at import time)."""

    def __init__(self) -> None:
        self._encodings: dict[str, _Encoding] = {}

    def _encoding(self, name: str) -> _Encoding:
        encoding = self._encodings.get(name)
        if encoding is None:
            import bpe_openai

            encoding = self._encodings[name] = bpe_openai.get_encoding(name)
        return encoding

    @cached_property
    def _o200k(self) -> _Encoding:
        return self._encoding("o200k_base")

    def _text(self, text: str, encoding: str | None) -> int:
        if encoding is not None:
            return len(self._encoding(encoding).encode_ordinary(text))
        by_bytes = math.ceil(len(text.encode("utf-8")) / 4)
        by_tokens = math.ceil(len(self._o200k.encode_ordinary(text)) * 1.2)
        return max(by_bytes, by_tokens)

    def count_text(self, provider: str, model: str, texts: Iterable[str]) -> TokenCount:
        encoding = encoding_for(provider, model)
        total = sum(self._text(t, encoding) for t in texts)
        return TokenCount(total, encoding is not None, encoding or "estimate")

    def count_messages(
        self,
        provider: str,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> TokenCount:
        """Tokens a chat prompt takes, framing included."""
        encoding = encoding_for(provider, model)
        exact = encoding is not None
        per_message = 3 if exact else ESTIMATE_MESSAGE_OVERHEAD
        total = 3  # the reply is primed with <|start|>assistant<|message|>
        for message in messages:
            total += per_message
            total += self._text(str(message.get("role", "")), encoding)
            name = message.get("name")
            if isinstance(name, str):
                total += 1 + self._text(name, encoding)
            content_tokens, content_exact = self._content(message.get("content"), encoding)
            total += content_tokens
            exact = exact and content_exact
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                total += self._text(str(function.get("name", "")), encoding)
                total += self._text(str(function.get("arguments", "")), encoding)
                total += per_message
                exact = False
        if tools:
            import orjson

            total += TOOL_DEFINITIONS_OVERHEAD + self._text(
                orjson.dumps(list(tools)).decode(), encoding
            )
            exact = False
        return TokenCount(total, exact, encoding if exact and encoding else "estimate")

    def _content(self, content: object, encoding: str | None) -> tuple[int, bool]:
        if content is None:
            return 0, True
        if isinstance(content, str):
            return self._text(content, encoding), True
        total, exact = 0, True
        if isinstance(content, list):
            for part in content:
                if not isinstance(part, Mapping):
                    continue
                kind = part.get("type")
                if kind == "text":
                    total += self._text(str(part.get("text", "")), encoding)
                elif kind == "refusal":
                    total += self._text(str(part.get("refusal", "")), encoding)
                elif kind == "image_url":
                    detail = (part.get("image_url") or {}).get("detail")
                    total += IMAGE_TOKENS_LOW if detail == "low" else IMAGE_TOKENS_ESTIMATE
                    exact = False
                else:
                    exact = False
        return total, exact
