from __future__ import annotations

import base64
import gzip
import importlib.resources
from functools import cache
from itertools import pairwise

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from ai_gateway.usage.tokens import TokenCounter, encoding_for, pieces

# tiktoken's own regexes for these encodings (tiktoken_ext/openai_public.py), so the reference
# below is tiktoken's engine, independent of the bpe-openai engine the gateway uses.
PATTERNS = {
    "cl100k_base": r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",  # noqa: E501
    "o200k_base": "|".join(
        [
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""\p{N}{1,3}""",
            r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
            r"""\s*[\r\n]+""",
            r"""\s+(?!\S)""",
            r"""\s+""",
        ]
    ),
}


@cache
def reference(name: str) -> tiktoken.Encoding:
    data = importlib.resources.files("bpe_openai.data").joinpath(f"{name}.tiktoken.gz")
    ranks = {
        base64.b64decode(token): int(rank)
        for token, rank in (
            line.split() for line in gzip.decompress(data.read_bytes()).splitlines() if line
        )
    }
    return tiktoken.Encoding(
        name=name, pat_str=PATTERNS[name], mergeable_ranks=ranks, special_tokens={}
    )


@cache
def shared_counter() -> TokenCounter:
    return TokenCounter()


@pytest.fixture
def counter() -> TokenCounter:
    return shared_counter()


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4o-2024-08-06", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("llama3.2", None),
    ],
)
def test_model_to_encoding(model: str, encoding: str | None) -> None:
    assert encoding_for("openai", model) == encoding
    assert encoding_for("anthropic", model) is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_exact_counts_match_tiktoken(text: str) -> None:
    counter = shared_counter()
    for model, name in (("gpt-4o", "o200k_base"), ("gpt-4", "cl100k_base")):
        count = counter.count_text("openai", model, [text])
        assert count.exact
        assert count.method == name
        assert count.tokens == len(reference(name).encode_ordinary(text))


def test_chat_framing(counter: TokenCounter) -> None:
    # OpenAI's published framing: 3 per message + role + content (+1 and the name), +3 priming.
    one = counter.count_messages("openai", "gpt-4o-mini", [{"role": "user", "content": "hi"}])
    assert one.tokens == 3 + 1 + 1 + 3
    assert one.exact
    named = counter.count_messages(
        "openai", "gpt-4o-mini", [{"role": "user", "content": "hi", "name": "ann"}]
    )
    assert named.tokens == one.tokens + 1 + len(reference("o200k_base").encode("ann"))


def test_images_and_tools_make_it_an_estimate(counter: TokenCounter) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    with_image = counter.count_messages(
        "openai",
        "gpt-4o",
        [{"role": "user", "content": [{"type": "text", "text": "what?"}, image]}],
    )
    assert not with_image.exact
    assert with_image.tokens > 1000
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    with_tools = counter.count_messages(
        "openai", "gpt-4o", [{"role": "user", "content": "x"}], tools
    )
    assert not with_tools.exact
    assert with_tools.method == "estimate"


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=400))
def test_estimates_never_count_below_o200k(text: str) -> None:
    counter = shared_counter()
    estimate = counter.count_text("anthropic", "claude-sonnet-4-5", [text])
    assert not estimate.exact
    assert estimate.method == "estimate"
    assert estimate.tokens >= len(reference("o200k_base").encode_ordinary(text))


def test_estimate_is_conservative_for_english_prose(counter: TokenCounter) -> None:
    prose = "The quick brown fox jumps over the lazy dog while the gateway counts tokens. " * 20
    exact = counter.count_text("openai", "gpt-4o", [prose]).tokens
    estimate = counter.count_text("gemini", "gemini-2.5-flash", [prose]).tokens
    assert exact * 1.15 <= estimate <= exact * 1.45


WORDS = ["ab", " ", "  ", "\n", "12345", "é", "中文", ",", "The", "\t", "don't"]


# derandomize: the same examples on every run, so CI never meets a new one by chance.
@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(WORDS), max_size=150))
def test_counting_in_pieces_gives_the_one_pass_count(words: list[str]) -> None:
    """A small piece size forces many cuts. Cut before a lone space, the count is the
    one-pass count (tiktoken's engine as the reference). A hard cut (no such space in the
    piece's second half) splits one pre-token, whose halves are encoded apart: a few tokens
    more or less a cut (" don't" is one token, " don'" and "t" are three)."""
    text = " ".join(words)
    size = 16
    parts = list(pieces(text, size))
    clean = all(rest.startswith(" ") and not part[-1].isspace() for part, rest in pairwise(parts))
    small = TokenCounter(piece_chars=size)
    for name, model in (("o200k_base", "gpt-4o"), ("cl100k_base", "gpt-4")):
        one_pass = len(reference(name).encode_ordinary(text))
        counted = small.count_text("openai", model, [text]).tokens
        if clean:
            assert counted == one_pass
        else:
            assert abs(counted - one_pass) <= 3 * (len(parts) - 1)


def test_texts_past_the_tokenizer_limits_are_counted(counter: TokenCounter) -> None:
    # bpe-openai refuses 1,000,000 characters in one call, and more than 200,000 tokens.
    assert counter.count_text("openai", "gpt-4o", ["ab " * 333_333 + "a"]).tokens == 333_334
    assert counter.count_text("openai", "gpt-4o", ["1 " * 110_000]).tokens == 220_000
    assert counter.count_text("anthropic", "claude", ["x" * 1_200_000]).tokens >= 300_000


def test_pieces_cut_before_a_lone_space() -> None:
    text = "aaaa bbbb  cccc dddd"
    parts = list(pieces(text, 8))
    assert "".join(parts) == text
    assert all(len(p) <= 8 for p in parts)
    assert parts[0] == "aaaa"  # before the space between two words
    assert list(pieces("x" * 20, 8)) == ["x" * 8, "x" * 8, "x" * 4]  # nowhere to cut: mid-run
