"""Anthropic prompt caching as the emulator plays it: cache writes, then reads, of the prefix up
to the last `cache_control` block; the three input counts always add up to the prompt's tokens."""

from __future__ import annotations

from typing import Any

from ai_gateway.emulator.anthropic_cache import MIN_TOKENS

from .support import ANTHROPIC_HEADERS, Emulator, parse_sse

MODEL = "claude-sonnet-4-20250514"
EPHEMERAL = {"type": "ephemeral"}
WORDS = 1100  # a system block above the emulator's minimum of 1024 tokens
OVERHEAD = 3  # per turn, the system prompt included


def long_text(word: str, words: int = WORDS) -> str:
    return " ".join([word] * words)


def marked(text: str, **control: Any) -> dict[str, Any]:
    return {"type": "text", "text": text, "cache_control": {**EPHEMERAL, **control}}


def request(system: Any, question: str = "What is in the guide", **fields: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 50,
        "system": system,
        "messages": [{"role": "user", "content": question}],
        **fields,
    }


async def usage(emulator: Emulator, body: dict[str, Any]) -> dict[str, int]:
    status, answer, _ = await emulator.post("/v1/messages", body, ANTHROPIC_HEADERS)
    assert status == 200, answer
    counts = answer["usage"]
    return {k: counts[k] for k in counts if k != "output_tokens"}


def split(input_tokens: int, write: int = 0, read: int = 0) -> dict[str, int]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read,
    }


async def test_a_marked_prefix_is_written_once_then_read(emulator: Emulator) -> None:
    body = request([marked(long_text("guide"))])
    prefix, rest = OVERHEAD + WORDS, OVERHEAD + 5
    assert await usage(emulator, body) == split(rest, write=prefix)
    assert await usage(emulator, body) == split(rest, read=prefix)
    # Another question after the same prefix reads it too; the question is the uncached rest.
    other = request([marked(long_text("guide"))], "And the next chapter please")
    assert await usage(emulator, other) == split(OVERHEAD + 5, read=prefix)
    stats = (await emulator.stats())["anthropic"][MODEL]
    assert stats["prompt_tokens"] == 3 * (prefix + rest)  # the whole prompt, as before


async def test_the_prefix_must_match_exactly(emulator: Emulator) -> None:
    await usage(emulator, request([marked(long_text("guide"))]))
    changed = request([marked(long_text("guide") + " v2")])
    assert await usage(emulator, changed) == split(OVERHEAD + 5, write=OVERHEAD + WORDS + 1)
    reordered = request([{"text": long_text("guide"), "type": "text", "cache_control": EPHEMERAL}])
    assert (await usage(emulator, reordered))["cache_read_input_tokens"] == 0
    other_model = request([marked(long_text("guide"))], model="claude-opus-4-20250514")
    assert (await usage(emulator, other_model))["cache_read_input_tokens"] == 0


async def test_unmarked_and_short_prefixes_are_not_cached(emulator: Emulator) -> None:
    for _ in range(2):
        plain = await usage(emulator, request(long_text("guide")))
        assert plain == split(OVERHEAD + WORDS + OVERHEAD + 5)
        short = long_text("guide", MIN_TOKENS - OVERHEAD - 1)
        assert await usage(emulator, request([marked(short)])) == split(OVERHEAD + MIN_TOKENS + 4)
    at_minimum = request([marked(long_text("guide", MIN_TOKENS - OVERHEAD))])
    assert (await usage(emulator, at_minimum))["cache_creation_input_tokens"] == MIN_TOKENS


async def test_the_longest_cached_prefix_is_read_and_the_rest_written(emulator: Emulator) -> None:
    tool = {"name": "lookup", "input_schema": {"type": "object"}, "cache_control": EPHEMERAL}
    first = [marked(long_text("guide")), marked(long_text("chapter"))]
    total = 10 + OVERHEAD + 2 * WORDS
    assert await usage(emulator, request(first, tools=[tool])) == split(OVERHEAD + 5, write=total)
    second = [marked(long_text("guide")), marked(long_text("appendix"))]
    assert await usage(emulator, request(second, tools=[tool])) == split(
        OVERHEAD + 5, write=WORDS, read=total - WORDS
    )
    # A breakpoint in the conversation caches the turns before it as well.
    body = request(first, tools=[tool])
    body["messages"][0]["content"] = [marked("What is in the guide")]
    assert await usage(emulator, body) == split(0, write=OVERHEAD + 5, read=total)


async def test_the_stream_reports_the_cache_in_message_start(emulator: Emulator) -> None:
    body = request([marked(long_text("guide"))], stream=True)
    for expected in (split(8, write=OVERHEAD + WORDS), split(8, read=OVERHEAD + WORDS)):
        status, text, _ = await emulator.post("/v1/messages", body, ANTHROPIC_HEADERS)
        assert status == 200
        start = parse_sse(text)[0][1]["message"]["usage"]
        assert {k: start[k] for k in expected} == expected


async def test_clearing_the_prompt_cache(emulator: Emulator) -> None:
    body = request([marked(long_text("guide"))])
    await usage(emulator, body)
    async with emulator.session.delete(emulator.base + "/_emulator/prompt-cache") as resp:
        assert (resp.status, await resp.json()) == (200, {"cleared": 1})
    assert (await usage(emulator, body))["cache_creation_input_tokens"] == OVERHEAD + WORDS


async def test_breakpoints_are_validated_like_the_api(emulator: Emulator) -> None:
    five = [marked(f"block {i}") for i in range(5)]
    status, answer, _ = await emulator.post("/v1/messages", request(five), ANTHROPIC_HEADERS)
    assert status == 400
    assert answer["error"] == {
        "type": "invalid_request_error",
        "message": "A maximum of 4 blocks with cache_control may be provided. Found 5.",
    }
    for control, field in (({"type": "persistent"}, "type"), ({"ttl": "1d"}, "ttl")):
        block = {**marked("guide"), "cache_control": {**EPHEMERAL, **control}}
        status, answer, _ = await emulator.post("/v1/messages", request([block]), ANTHROPIC_HEADERS)
        assert status == 400
        assert answer["error"]["message"].startswith(f"system.0.cache_control.{field}:")
    assert await usage(emulator, request([marked("guide", ttl="1h")])) == split(OVERHEAD + 1 + 8)
