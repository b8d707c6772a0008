"""Cutting text into overlapping chunks of at most N o200k tokens, and reading the strategy."""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ai_gateway.rag.chunking import (
    AUTO,
    ChunkingStrategy,
    TokenEncoding,
    chunk_spans,
    chunk_text,
    o200k,
    parse_strategy,
)

_SURROGATE = re.compile("[\ud800-\udfff]")


@pytest.fixture(scope="module")
def enc() -> TokenEncoding:
    return o200k()


def tokens(enc: TokenEncoding, text: str) -> int:
    return len(enc.encode_ordinary(text))


def assert_covers(
    enc: TokenEncoding, text: str, strategy: ChunkingStrategy
) -> list[tuple[int, int]]:
    """Chunk `text`, and check what holds for any text: the chunks are the text at their spans,
    each within the limit, without whitespace at their ends, each starting and ending after the
    one before, and nothing but whitespace is left out before, between or after them."""
    places = chunk_spans(text, strategy, enc)
    chunks = chunk_text(text, strategy, enc)
    # (A lone surrogate, which UTF-8 cannot carry, is given as U+FFFD.)
    assert chunks == [_SURROGATE.sub("\ufffd", text[start:end]) for start, end in places]
    for chunk in chunks:
        assert chunk.strip()
        assert chunk == chunk.rstrip()
        assert tokens(enc, chunk) <= strategy.max_tokens
    for (start, end), (next_start, next_end) in pairwise(places):
        assert start < next_start
        assert end < next_end
        assert not text[end:next_start].strip(), text[end:next_start][:80]
    if places:
        assert not text[: places[0][0]].strip()
        assert not text[places[-1][1] :].strip()
    return places


def numbered_words(count: int, per_sentence: int = 12, per_paragraph: int = 5) -> str:
    """Prose of unique words: sentences of `per_sentence` words, paragraphs of
    `per_paragraph` sentences."""
    words = [f"word{i}" for i in range(count)]
    sentences = [
        " ".join(words[i : i + per_sentence]).capitalize() + "."
        for i in range(0, count, per_sentence)
    ]
    paragraphs = [
        " ".join(sentences[i : i + per_paragraph]) for i in range(0, len(sentences), per_paragraph)
    ]
    return "\n\n".join(paragraphs)


# --- the strategy ---------------------------------------------------------------------------


def test_auto_is_openais_800_tokens_with_400_of_overlap() -> None:
    assert ChunkingStrategy(800, 400) == AUTO
    assert AUTO.view() == {
        "type": "static",
        "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
    }


@pytest.mark.parametrize("raw", [None, {"type": "auto"}])
def test_absent_or_auto_is_the_auto_strategy(raw: object) -> None:
    assert parse_strategy(raw) is AUTO
    configured = ChunkingStrategy(512, 128)
    assert parse_strategy(raw, configured) is configured


@pytest.mark.parametrize(("size", "overlap"), [(100, 0), (100, 50), (4096, 2048), (801, 400)])
def test_a_static_strategy_within_openais_limits_is_taken(size: int, overlap: int) -> None:
    raw = {
        "type": "static",
        "static": {"max_chunk_size_tokens": size, "chunk_overlap_tokens": overlap},
    }
    strategy = parse_strategy(raw)
    assert strategy == ChunkingStrategy(size, overlap)
    assert strategy.view() == raw


def _static(**fields: Any) -> dict[str, Any]:
    return {"type": "static", "static": fields}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("auto", r"^chunking_strategy must be an object"),
        ({}, r"^chunking_strategy\.type must be 'auto' or 'static'"),
        ({"type": "other"}, r"^chunking_strategy\.type must be 'auto' or 'static'"),
        ({"type": "auto", "static": {}}, r"type 'auto' takes no other fields"),
        ({"type": "static"}, r"type 'static' takes exactly one other field, 'static'"),
        ({"type": "static", "static": 5}, r"^chunking_strategy\.static must be an object"),
        (
            _static(max_chunk_size_tokens=800),
            r"^chunking_strategy\.static\.chunk_overlap_tokens is required",
        ),
        (
            _static(chunk_overlap_tokens=0),
            r"^chunking_strategy\.static\.max_chunk_size_tokens is required",
        ),
        (
            _static(max_chunk_size_tokens=800, chunk_overlap_tokens=0, size=1),
            r"^chunking_strategy\.static has an unknown field: 'size'",
        ),
        (
            _static(max_chunk_size_tokens="800", chunk_overlap_tokens=0),
            r"^chunking_strategy\.static\.max_chunk_size_tokens must be an integer",
        ),
        (
            _static(max_chunk_size_tokens=800.0, chunk_overlap_tokens=0),
            r"max_chunk_size_tokens must be an integer",
        ),
        (
            _static(max_chunk_size_tokens=800, chunk_overlap_tokens=True),
            r"chunk_overlap_tokens must be an integer",
        ),
        (
            _static(max_chunk_size_tokens=99, chunk_overlap_tokens=0),
            r"max_chunk_size_tokens must be between 100 and 4096, not 99",
        ),
        (
            _static(max_chunk_size_tokens=4097, chunk_overlap_tokens=0),
            r"max_chunk_size_tokens must be between 100 and 4096, not 4097",
        ),
        (
            _static(max_chunk_size_tokens=800, chunk_overlap_tokens=-1),
            r"chunk_overlap_tokens must not be negative",
        ),
        (
            _static(max_chunk_size_tokens=800, chunk_overlap_tokens=401),
            r"^chunking_strategy\.static\.chunk_overlap_tokens must not exceed half of "
            r"max_chunk_size_tokens",
        ),
    ],
)
def test_a_wrong_strategy_names_the_field(raw: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_strategy(raw)


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (10, -1), (10, 6)])
def test_a_strategy_that_cannot_make_progress_is_refused(size: int, overlap: int) -> None:
    with pytest.raises(ValueError, match=r"max_tokens|overlap_tokens"):
        ChunkingStrategy(size, overlap)


# --- chunks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", " ", "\n\n\t \r\n  \u3000"])
def test_whitespace_alone_makes_no_chunks(enc: TokenEncoding, text: str) -> None:
    assert chunk_text(text, AUTO, enc) == []


def test_a_short_text_is_one_chunk_without_its_outer_whitespace(enc: TokenEncoding) -> None:
    assert chunk_text(" \n\nHello there.\n\n  ", AUTO, enc) == ["Hello there."]


def test_the_encoding_defaults_to_o200k() -> None:
    text = numbered_words(600)
    assert chunk_text(text, ChunkingStrategy(150, 30)) == chunk_text(
        text, ChunkingStrategy(150, 30), o200k()
    )


@pytest.mark.parametrize(("size", "overlap"), [(800, 400), (100, 0), (300, 100), (4096, 2048)])
def test_chunks_keep_to_the_limit_overlap_as_asked_and_cover_the_text(
    enc: TokenEncoding, size: int, overlap: int
) -> None:
    text = numbered_words(6000)
    places = assert_covers(enc, text, ChunkingStrategy(size, overlap))
    assert len(places) > 2
    for (_, end), (start, _) in pairwise(places):
        shared = tokens(enc, text[start:end]) if start < end else 0
        # A chunk ends at the best boundary in the last part of its window and the next starts
        # at a word, so the overlap is close to, and never above, the one asked for.
        assert overlap * 0.75 - 2 <= shared <= overlap + 1
    # Chunks are not much shorter than the window: the text is cut into few of them.
    assert all(tokens(enc, text[start:end]) >= size * 0.45 for start, end in places[:-1])


def test_chunks_end_at_paragraph_ends_when_one_is_near(enc: TokenEncoding) -> None:
    text = numbered_words(4000)  # paragraphs of 60 words, about 100 tokens
    for start, end in assert_covers(enc, text, ChunkingStrategy(400, 0)):
        assert start == 0 or text[start - 2 : start] == "\n\n"
        assert end == len(text) or text[end : end + 2] == "\n\n"


def test_chunks_end_at_line_ends_then_sentence_ends(enc: TokenEncoding) -> None:
    lines = numbered_words(3000, per_paragraph=1).replace("\n\n", "\n")
    for _, end in assert_covers(enc, lines, ChunkingStrategy(200, 0)):
        assert end == len(lines) or lines[end] == "\n"
    prose = numbered_words(3000, per_paragraph=10_000)  # one paragraph
    for start, end in assert_covers(enc, prose, ChunkingStrategy(200, 50)):
        assert prose[end - 1] == "."
        assert start == 0 or prose[start - 1] == " "


def test_text_without_punctuation_is_cut_between_words(enc: TokenEncoding) -> None:
    text = " ".join(f"token{i}" for i in range(5000))
    for start, end in assert_covers(enc, text, ChunkingStrategy(120, 40)):
        assert start == 0 or text[start - 1] == " "
        assert end == len(text) or text[end] == " "


def test_indentation_of_a_chunks_first_line_is_kept(enc: TokenEncoding) -> None:
    code = "\n\n".join(
        f"def function_{i}(x):\n    if x > {i}:\n        return x * {i}\n    return {i}"
        for i in range(300)
    )
    chunks = chunk_text("    " + code, ChunkingStrategy(150, 0), enc)
    assert chunks[0].startswith("    def function_0(x):")
    assert all(chunk.startswith("def function_") for chunk in chunks[1:])


# Graphemes of several code points: a family (joined by ZWJ), a flag, an accent as a combining
# mark, a thumbs up with a skin tone, a keycap; then CJK with no spaces at all.
UNIT = "👨\u200d👩\u200d👧\u200d👦🇯🇵e\u0301👍🏽1\ufe0f\u20e3日本語の文章"
GRAPHEME_STARTS = {0, 7, 9, 11, 13, 16, 17, 18, 19, 20, 21}


@pytest.mark.parametrize(("size", "overlap"), [(100, 30), (100, 0), (16, 8)])
def test_cjk_and_emoji_are_never_broken(enc: TokenEncoding, size: int, overlap: int) -> None:
    assert len(UNIT) == 22
    text = UNIT * 400
    for start, end in assert_covers(enc, text, ChunkingStrategy(size, overlap)):
        assert start % len(UNIT) in GRAPHEME_STARTS
        assert end % len(UNIT) in GRAPHEME_STARTS


def test_cjk_sentences_end_at_their_full_stops(enc: TokenEncoding) -> None:
    text = "".join(f"これは{i}番目の文です。" for i in range(2000))
    chunks = chunk_text(text, ChunkingStrategy(120, 0), enc)
    assert_covers(enc, text, ChunkingStrategy(120, 0))
    assert all(chunk.endswith("。") for chunk in chunks)
    assert "".join(chunks) == text


def test_lone_surrogates_are_read_as_replacement_characters(enc: TokenEncoding) -> None:
    text = "broken \ud800 surrogate. " * 200
    places = assert_covers(enc, text, ChunkingStrategy(100, 20))
    chunks = chunk_text(text, ChunkingStrategy(100, 20), enc)
    assert chunks[0].startswith("broken \ufffd surrogate.")
    assert all(text[start] == "b" for start, _ in places)


class EdgeCostEncoding:
    """One token per character, and one more at the end of each text encoded: a chunk counted
    on its own has a token more than its span had in the whole text (as real BPE tokens can
    merge differently at a chunk's edges)."""

    def encode_ordinary(self, text: str) -> list[int]:
        return [ord(c) for c in text] + ([-1] if text else [])

    def decode_tokens_bytes(self, tokens: Sequence[int]) -> list[bytes]:
        # The extra token is a lone continuation byte: it holds no character of the text.
        return [b"\x80" if token == -1 else chr(token).encode() for token in tokens]


def test_a_chunk_over_the_limit_on_its_own_is_cut_shorter() -> None:
    enc = EdgeCostEncoding()
    text = "é" * 200  # (not ASCII: chunking trusts an ASCII text's tokens to be ASCII)
    chunks = chunk_text(text, ChunkingStrategy(20, 0), enc)
    assert all(len(enc.encode_ordinary(chunk)) <= 20 for chunk in chunks)
    assert "".join(chunks) == text
    assert {len(chunk) for chunk in chunks[:-1]} == {19}


def test_a_megabyte_of_text_is_chunked_whole(enc: TokenEncoding) -> None:
    text = numbered_words(120_000)
    assert len(text.encode()) > 1_000_000
    assert len(assert_covers(enc, text, AUTO)) > 300


# --- properties -----------------------------------------------------------------------------

_PIECES = st.sampled_from(
    [
        *(
            "word",
            " ",
            "  ",
            "\n",
            "\n\n",
            ". ",
            "Ünïcödé",
            "日本語",
            "。",
            "👍🏽",
            "🇯🇵",
            "e\u0301",
        ),
        *("x" * 40, "https://example.com/a/b?c=d", "\t", "1234567", "?! ", "\r\n", "\u3000"),
    ]
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pieces=st.lists(_PIECES, max_size=400),
    size=st.integers(min_value=8, max_value=80),
    share=st.floats(min_value=0, max_value=0.5),
)
def test_any_text_is_covered_by_chunks_within_the_limit(
    enc: TokenEncoding, pieces: list[str], size: int, share: float
) -> None:
    text = "".join(pieces)
    places = assert_covers(enc, text, ChunkingStrategy(size, int(size * share)))
    assert bool(places) == bool(text.strip())


def test_a_chunk_that_would_start_where_the_last_one_did_replaces_it(enc: TokenEncoding) -> None:
    """Found by the property test: the overlap reached back past the first chunk's leading
    newline, so the second chunk started where the first did and held it whole."""
    places = assert_covers(enc, "\n👍🏽🇯🇵🇯🇵", ChunkingStrategy(11, 5))
    assert places == [(1, 7)]
