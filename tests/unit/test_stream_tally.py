"""StreamTally: the tokens of a stream that ended without the provider's usage."""

from __future__ import annotations

from ai_gateway.usage import streamed
from ai_gateway.usage.streamed import StreamTally
from ai_gateway.usage.tokens import TokenCounter

BODY = {"messages": [{"role": "user", "content": "Say hello to the world"}]}


def chunk(**delta: object) -> dict[str, object]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


def test_counts_every_streamed_field_and_the_prompt() -> None:
    counter = TokenCounter()
    tally = StreamTally(counter, "openai", "gpt-4o-mini", BODY)
    tally.feed(chunk(role="assistant"))
    tally.feed(chunk(content="Hello, "))
    tally.feed(chunk(content="world!"))
    tally.feed(chunk(refusal="no"))
    call = {"index": 0, "function": {"name": "lookup", "arguments": '{"q": "x"}'}}
    tally.feed(chunk(tool_calls=[call]))
    tally.feed({"choices": []})
    text = "".join(["Hello, world!", "no", "lookup", '{"q": "x"}'])
    expected = counter.count_text("openai", "gpt-4o-mini", [text]).tokens
    prompt = counter.count_messages("openai", "gpt-4o-mini", BODY["messages"]).tokens
    assert tally.usage() == {
        "prompt_tokens": prompt,
        "completion_tokens": expected,
        "total_tokens": prompt + expected,
    }


def test_a_long_stream_is_counted_in_bounded_pieces_never_under() -> None:
    counter = TokenCounter()
    tally = StreamTally(counter, "openai", "gpt-4o-mini", BODY)
    words = ["lorem ipsum dolor sit amet "] * 20_000  # 540,000 characters
    for word in words:
        tally.feed(chunk(content=word))
    assert tally._chars < streamed.FOLD_CHARS  # at most one piece is held
    whole = counter.count_text("openai", "gpt-4o-mini", ["".join(words)]).tokens
    counted = tally.completion_tokens()
    folds = 540_000 // streamed.FOLD_CHARS
    assert whole <= counted <= whole + 3 * folds  # a token or two where each piece was cut


def test_nothing_streamed_is_no_completion() -> None:
    tally = StreamTally(TokenCounter(), "anthropic", "claude-sonnet-4-5", {"messages": []})
    assert tally.usage()["completion_tokens"] == 0
