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

Any length can be counted. The tokenizer refuses a text of 1,000,000 characters or more, or
one that makes more than 200,000 tokens, so a text longer than PIECE_CHARS is counted in pieces
of at most that many characters (at most 4 UTF-8 bytes each, so at most 200,000 tokens: a
byte-level BPE makes at most one token per byte). A piece ends before a space that stands
between two non-space characters, where both encodings' pre-tokenizers split anyway, so the
count is the same as in one pass; only a text without such a space is cut mid-run, which can
change the count by a token per cut.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

IMAGE_TOKENS_ESTIMATE = 1105  # OpenAI's high-detail cost of a 1024x1024 image (4 tiles + base)
IMAGE_TOKENS_LOW = 85
ESTIMATE_MESSAGE_OVERHEAD = 4
TOOL_DEFINITIONS_OVERHEAD = 12

_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")
_CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "gpt-35", "text-embedding-3", "text-embedding-ada-002")
PIECE_CHARS = 50_000


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


def pieces(text: str, size: int) -> Iterator[str]:
    """`text` in consecutive pieces of at most `size` characters, each but the last ending
    before a space between two non-space characters in its second half, if it has one."""
    start, end = 0, len(text)
    while end - start > size:
        cut = start + size
        space = text.rfind(" ", start + size // 2, cut)
        while space > start and (text[space - 1].isspace() or text[space + 1].isspace()):
            space = text.rfind(" ", start + size // 2, space)
        if space > start:
            cut = space
        yield text[start:cut]
        start = cut
    yield text[start:]


class TokenCounter:
    """Loads each encoding once, on first use (not at import time)."""

    def __init__(self, piece_chars: int = PIECE_CHARS) -> None:
        self._encodings: dict[str, _Encoding] = {}
        self._piece_chars = min(piece_chars, PIECE_CHARS)

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
            return self._tokens(self._encoding(encoding), text)
        by_bytes = math.ceil(len(text.encode("utf-8")) / 4)
        by_tokens = math.ceil(self._tokens(self._o200k, text) * 1.2)
        return max(by_bytes, by_tokens)

    def _tokens(self, encoding: _Encoding, text: str) -> int:
        size = self._piece_chars
        if len(text) <= size:
            return len(encoding.encode_ordinary(text))
        total = 0
        for piece in pieces(text, size):
            total += len(encoding.encode_ordinary(piece))
        return total

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
