"""Cutting a file's text into chunks of at most N o200k tokens that overlap by about M tokens,
as OpenAI's vector stores do (`chunking_strategy`), and reading that strategy from a request.

The text is encoded once; each chunk then spans a run of its tokens. A chunk ends at the most
natural place in the last part of its window: after a blank line, else at a line end, else after
a sentence's end, else at a space; only text with none of these there (a long run of CJK, a
minified file) is cut between two tokens, and never inside a character or between a character
and what joins onto it (a combining mark, an emoji's modifier or joiner). The next chunk starts
`overlap` tokens before that end, moved forward to the start of a word. Chunks are trimmed of
the whitespace at their ends; each is counted again on its own and cut shorter in the rare case
where its tokens at the edges merge differently from the text's, so none exceeds N tokens.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, repeat
from operator import itemgetter
from typing import Any, Protocol

from ai_gateway.usage.tokens import PIECE_CHARS, pieces

MIN_CHUNK_TOKENS = 100
MAX_CHUNK_TOKENS = 4096

_BLANK_LINE = re.compile(r"\n[^\S\n]*\n")
# A sentence ends at . ! ? (and closing quotes or brackets) before a space, or at CJK's full
# stop, exclamation or question mark.
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s)|[\u3002\uff01\uff1f]")
_SPACE = re.compile(r"\s")
_SURROGATE = re.compile("[\ud800-\udfff]")
_WORD_CHARS = 64  # how far a chunk's start moves forward to a word's start, at most
_CONTINUATION = bytes(range(0x80, 0xC0))
_CONTINUES = re.compile(rb"[\x80-\xbf]")
_STARTS = re.compile(rb"[^\x80-\xbf]")
# Code points that join onto the one before them: a cut must not fall just before one.
_JOINING = frozenset({"\u200d", "\ufe0e", "\ufe0f", *map(chr, range(0x1F3FB, 0x1F400))})


class TokenEncoding(Protocol):
    """What chunking needs of a tokenizer (a `bpe_openai` or `tiktoken` encoding)."""

    def encode_ordinary(self, text: str) -> list[int]: ...

    def decode_tokens_bytes(self, tokens: Sequence[int]) -> list[bytes]: ...


def o200k() -> TokenEncoding:
    """The o200k_base encoding. Loading it takes a fraction of a second: load it once and pass
    it to every `chunk_text` call."""
    import bpe_openai

    encoding: TokenEncoding = bpe_openai.get_encoding("o200k_base")
    return encoding


@dataclass(frozen=True)
class ChunkingStrategy:
    max_tokens: int
    overlap_tokens: int

    def __post_init__(self) -> None:
        if self.max_tokens < 1 or self.overlap_tokens < 0:
            raise ValueError("max_tokens must be positive and overlap_tokens not negative")
        if 2 * self.overlap_tokens > self.max_tokens:
            raise ValueError("overlap_tokens must not exceed half of max_tokens")

    def view(self) -> dict[str, Any]:
        """The strategy as OpenAI shows it on a vector-store file."""
        return {
            "type": "static",
            "static": {
                "max_chunk_size_tokens": self.max_tokens,
                "chunk_overlap_tokens": self.overlap_tokens,
            },
        }


AUTO = ChunkingStrategy(800, 400)  # OpenAI's documented `auto`


def parse_strategy(raw: object, auto: ChunkingStrategy = AUTO) -> ChunkingStrategy:
    """A request's `chunking_strategy`: absent or `{"type": "auto"}` is `auto`; `{"type":
    "static", "static": {...}}` has its sizes checked as OpenAI's API reference says. Anything
    else raises ValueError naming the field."""
    if raw is None:
        return auto
    if not isinstance(raw, dict):
        raise ValueError("chunking_strategy must be an object with a 'type' of 'auto' or 'static'")
    kind = raw.get("type")
    if kind == "auto":
        if set(raw) != {"type"}:
            raise ValueError("chunking_strategy of type 'auto' takes no other fields")
        return auto
    if kind != "static":
        raise ValueError("chunking_strategy.type must be 'auto' or 'static'")
    if set(raw) != {"type", "static"}:
        raise ValueError(
            "chunking_strategy of type 'static' takes exactly one other field, 'static'"
        )
    static = raw["static"]
    if not isinstance(static, dict):
        raise ValueError(
            "chunking_strategy.static must be an object with max_chunk_size_tokens and "
            "chunk_overlap_tokens"
        )
    unknown = sorted(set(static) - {"max_chunk_size_tokens", "chunk_overlap_tokens"})
    if unknown:
        raise ValueError(f"chunking_strategy.static has an unknown field: {unknown[0]!r}")
    size = _integer(static, "max_chunk_size_tokens")
    overlap = _integer(static, "chunk_overlap_tokens")
    if not MIN_CHUNK_TOKENS <= size <= MAX_CHUNK_TOKENS:
        raise ValueError(
            f"chunking_strategy.static.max_chunk_size_tokens must be between "
            f"{MIN_CHUNK_TOKENS} and {MAX_CHUNK_TOKENS}, not {size}"
        )
    if overlap < 0:
        raise ValueError("chunking_strategy.static.chunk_overlap_tokens must not be negative")
    if 2 * overlap > size:
        raise ValueError(
            "chunking_strategy.static.chunk_overlap_tokens must not exceed half of "
            f"max_chunk_size_tokens ({overlap} > {size} / 2)"
        )
    return ChunkingStrategy(size, overlap)


def _integer(static: dict[Any, Any], name: str) -> int:
    if name not in static:
        raise ValueError(f"chunking_strategy.static.{name} is required")
    value = static[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"chunking_strategy.static.{name} must be an integer")
    return value


def chunk_text(
    text: str, strategy: ChunkingStrategy, encoding: TokenEncoding | None = None
) -> list[str]:
    """`text` in chunks of at most `strategy.max_tokens` tokens of `encoding` (o200k_base when
    not given, loaded for this call), consecutive ones sharing about `strategy.overlap_tokens`
    tokens. Text of whitespace alone makes no chunks."""
    text = _encodable(text)
    return [text[start:end] for start, end in chunk_spans(text, strategy, encoding)]


def chunk_spans(
    text: str, strategy: ChunkingStrategy, encoding: TokenEncoding | None = None
) -> list[tuple[int, int]]:
    """Where `chunk_text`'s chunks lie in `text`: (start, end) character offsets, both
    increasing from one chunk to the next."""
    if not text.strip():
        return []
    enc = encoding if encoding is not None else o200k()
    return _Chunker(_encodable(text), strategy, enc).run()


def _encodable(text: str) -> str:
    """`text` with each lone surrogate made U+FFFD, as the tokenizer sees it (one character for
    one, so offsets into it are offsets into `text`)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


class _Chunker:
    """One text's cut points: `chars[i]` is a character offset where a token starts (or the
    text's end) and `tokens[i]` the number of tokens before it. Token boundaries inside a
    character (a rare character spread over several byte tokens) are not cut points."""

    def __init__(self, text: str, strategy: ChunkingStrategy, encoding: TokenEncoding) -> None:
        self.text = text
        self.size = strategy.max_tokens
        self.overlap = strategy.overlap_tokens
        self.encoding = encoding
        # A chunk ends no earlier than this many tokens into its window, so that the next one
        # starts at least a quarter of a window further on.
        self.floor = max(self.size // 2, self.overlap + self.size // 4)
        self.chars: list[int] = []
        self.tokens: list[int] = []
        self._index()

    def _index(self) -> None:
        ids: list[int] = []
        for piece in pieces(self.text, PIECE_CHARS):
            ids += self.encoding.encode_ordinary(piece)
        spans = self.encoding.decode_tokens_bytes(ids)
        # Characters per token: its bytes less the UTF-8 continuation bytes (map and accumulate
        # keep this loop in C: it runs over every token of a text that may be megabytes long).
        if self.text.isascii():
            starts = map(len, spans)
        else:
            starts = map(len, map(bytes.translate, spans, repeat(None), repeat(_CONTINUATION)))
        chars = list(accumulate(starts, initial=0))
        tokens = list(range(len(spans) + 1))
        inside = bytes(map(itemgetter(0), spans))  # each token's first byte
        if _CONTINUES.search(inside) is not None:  # some tokens start inside a character
            keep = [m.start() for m in _STARTS.finditer(inside)] + [len(spans)]
            chars = [chars[i] for i in keep]
            tokens = keep
        assert chars[-1] == len(self.text), "token bytes do not add up to the text"
        self.chars, self.tokens = chars, tokens

    def _token_at(self, char: int) -> int:
        """The number of tokens before the cut point at or before `char`."""
        return self.tokens[bisect_right(self.chars, char) - 1]

    def _char_at(self, token: int) -> int:
        """The offset of the last cut point at most `token` tokens into the text."""
        return self.chars[bisect_right(self.tokens, token) - 1]

    def run(self) -> list[tuple[int, int]]:
        chunks: list[tuple[int, int]] = []
        start, end_of_text, last_end = 0, len(self.text), 0
        while start < end_of_text:
            first = self._token_at(start)
            end, left, right = self._chunk(start, first)
            if right <= last_end or left >= right:
                # Only whitespace, or nothing past the last chunk in reach (a grapheme longer
                # than the part of the window the overlap leaves): go on after both.
                start = max(end, last_end)
                continue
            if chunks and left <= chunks[-1][0]:
                # It starts where the last one did (the overlap reached back past its leading
                # whitespace) and ends further on: it replaces that one, which it holds whole.
                chunks[-1] = (left, right)
            else:
                chunks.append((left, right))
            last_end = right
            if end >= end_of_text:
                break
            start = max(self._next_start(start, first, end), start + 1)
        return chunks

    def _chunk(self, start: int, first: int) -> tuple[int, int, int]:
        """The end of the window starting at `start`, and the chunk in it, trimmed: (end,
        left, right)."""
        limit = self.size
        while True:
            end = self._end(start, first, limit)
            left, right = _trim(self.text, start, end)
            if left >= right:
                return end, left, right
            excess = len(self.encoding.encode_ordinary(self.text[left:right])) - self.size
            if excess <= 0 or limit == 1:
                return end, left, right
            # Its tokens merged differently on their own: cut it shorter.
            limit = max(1, limit - excess)

    def _end(self, start: int, first: int, limit: int) -> int:
        """Where the chunk starting at `start` (in the cut point `first` tokens in) ends."""
        text = self.text
        high = self._char_at(first + limit)
        if high >= len(text):
            return len(text)
        low = max(self._char_at(first + min(self.floor, limit)), start + 1)
        if high > low:
            blank = _last(_BLANK_LINE, text, low, high)
            if blank is not None:
                return blank.end()
            line = text.rfind("\n", low, high)
            if line >= 0:
                return line + 1
            sentence = _last(_SENTENCE_END, text, low, high)
            if sentence is not None:
                return sentence.end()
            space = _last(_SPACE, text, low, high)
            if space is not None:
                return space.start()
        # Cut between tokens, at a cut point that splits no grapheme if there is one.
        index = bisect_right(self.chars, high) - 1
        while index > 0 and self.chars[index] > start and not _may_cut(text, self.chars[index]):
            index -= 1
        if self.chars[index] > start:
            return self.chars[index]
        # A window too small to hold one character (only a tiny max_tokens): take one anyway.
        return self.chars[bisect_right(self.chars, start)]

    def _next_start(self, start: int, first: int, end: int) -> int:
        """Where the chunk after the one over [start, end) starts: `overlap` tokens before its
        end, moved forward to a word's start when one is near (never past `end`, so no text is
        skipped)."""
        if self.overlap == 0:
            return end
        target = max(self._token_at(end) - self.overlap, first + 1)
        index = bisect_left(self.tokens, target)
        begin = max(self.chars[index], start + 1)
        if begin >= end:
            return end
        text = self.text
        if not text[begin - 1].isspace() and not text[begin].isspace():
            space = _SPACE.search(text, begin, min(end, begin + _WORD_CHARS))
            if space is not None:
                begin = space.start()
        while begin < end and not _may_cut(text, begin):
            begin += 1
        return begin


def _last(pattern: re.Pattern[str], text: str, low: int, high: int) -> re.Match[str] | None:
    """The last match of `pattern` that starts in text[low:high]."""
    found = None
    for match in pattern.finditer(text, low, high):
        found = match
    return found


def _may_cut(text: str, at: int) -> bool:
    """Whether a cut before text[at] leaves every grapheme whole (an approximation of
    Unicode's rules that covers combining marks, emoji sequences, flags and CRLF)."""
    after, before = text[at], text[at - 1]
    if after in _JOINING or before == "\u200d" or (before == "\r" and after == "\n"):
        return False
    if unicodedata.category(after) in ("Mn", "Mc", "Me"):
        return False
    if "\U000e0020" <= after <= "\U000e007f":  # emoji tag sequences (subdivision flags)
        return False
    regional = "\U0001f1e6" <= before <= "\U0001f1ff" and "\U0001f1e6" <= after <= "\U0001f1ff"
    return not regional


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """[start, end) without whitespace at its ends, but with the indentation of its first line
    when that line starts in it."""
    right = end
    while right > start and text[right - 1].isspace():
        right -= 1
    left = start
    while left < right and text[left].isspace():
        left += 1
    line = text.rfind("\n", start, left)
    if line >= 0:
        return line + 1, right
    if start == 0 or text[start - 1] == "\n":
        return start, right
    return left, right
