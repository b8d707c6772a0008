"""Prompt caching in the Anthropic translation: which requests get breakpoints, and where."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from ai_gateway.cache.config import PromptCaching
from ai_gateway.providers.anthropic_request import RESPONSE_TOOL, translate_request
from ai_gateway.providers.base import ChatRequest
from ai_gateway.schemas.chat import ChatCompletionRequest
from ai_gateway.schemas.validation import parse_body

EPHEMERAL = {"type": "ephemeral"}
ON = PromptCaching(min_tokens=100)  # 400 bytes of tools and system
LONG = "x" * 400
TOOL = {
    "type": "function",
    "function": {
        "name": "search_docs",
        "description": "Search the documentation",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
    },
}


def chat(messages: list[dict[str, Any]], **fields: Any) -> ChatRequest:
    body = {"model": "claude", "messages": messages, **fields}
    return ChatRequest(body=body, parsed=parse_body(ChatCompletionRequest, body))


def translate(
    messages: list[dict[str, Any]], caching: PromptCaching | None = ON, **fields: Any
) -> dict[str, Any]:
    return translate_request(chat(messages, **fields), "claude-sonnet-4-0", 1000, caching).body


def marks(body: dict[str, Any]) -> int:
    return orjson.dumps(body).count(b'"cache_control"')


def test_a_long_system_prompt_is_marked_on_its_last_block() -> None:
    body = translate(
        [
            {"role": "system", "content": "Be terse."},
            {"role": "developer", "content": LONG},
            {"role": "user", "content": "hi"},
        ]
    )
    assert body["system"] == [
        {"type": "text", "text": "Be terse."},
        {"type": "text", "text": LONG, "cache_control": EPHEMERAL},
    ]
    assert marks(body) == 1


def test_the_threshold_is_utf8_bytes_over_four() -> None:
    user = {"role": "user", "content": "hi"}
    assert marks(translate([{"role": "system", "content": "x" * 400}, user])) == 1
    assert marks(translate([{"role": "system", "content": "x" * 399}, user])) == 0
    # Bytes, not characters: 134 three-byte characters are 402 bytes, 100 estimated tokens.
    assert marks(translate([{"role": "system", "content": "漢" * 134}, user])) == 1
    assert marks(translate([{"role": "system", "content": "漢" * 133}, user])) == 0


def test_a_short_prefix_is_not_marked() -> None:
    short = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}]
    assert marks(translate(short, PromptCaching(min_tokens=2))) == 1  # 9 bytes: 2 tokens
    assert marks(translate(short, PromptCaching(min_tokens=3))) == 0
    # A long conversation does not count: only tools and system make the stable prefix.
    long_question = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": LONG}]
    assert marks(translate(long_question)) == 0


def test_nothing_is_marked_when_prompt_caching_is_off() -> None:
    messages = [{"role": "system", "content": LONG}, {"role": "user", "content": "hi"}]
    assert marks(translate(messages, PromptCaching(min_tokens=1), tools=[TOOL])) == 2
    assert marks(translate(messages, PromptCaching(enabled=False, min_tokens=1), tools=[TOOL])) == 0
    assert marks(translate(messages, None, tools=[TOOL])) == 0


def test_tools_and_system_both_get_a_breakpoint() -> None:
    other = {"type": "function", "function": {"name": "get_time"}}
    body = translate(
        [{"role": "system", "content": LONG}, {"role": "user", "content": "hi"}],
        tools=[TOOL, other],
    )
    assert "cache_control" not in body["tools"][0]
    assert body["tools"][1]["cache_control"] == EPHEMERAL
    assert body["system"][-1]["cache_control"] == EPHEMERAL
    assert marks(body) == 2


def test_tools_count_toward_the_prefix_and_are_marked_alone() -> None:
    schema = {"type": "object", "properties": {f"field_{i}": {"type": "string"} for i in range(20)}}
    big = {"type": "function", "function": {"name": "fill_form", "parameters": schema}}
    body = translate([{"role": "user", "content": "hi"}], tools=[big])
    assert body["tools"][-1]["cache_control"] == EPHEMERAL
    assert "system" not in body
    assert marks(body) == 1
    # The response-format tool is the last tool when there is one.
    body = translate(
        [{"role": "system", "content": LONG}, {"role": "user", "content": "hi"}],
        tools=[TOOL],
        response_format={"type": "json_object"},
    )
    assert [t["name"] for t in body["tools"]] == ["search_docs", RESPONSE_TOOL]
    assert body["tools"][-1]["cache_control"] == EPHEMERAL
    assert marks(body) == 2


@pytest.mark.parametrize(
    "own",
    [
        # on a system part
        [
            {
                "role": "system",
                "content": [{"type": "text", "text": LONG, "cache_control": EPHEMERAL}],
            },
            {"role": "user", "content": "hi"},
        ],
        # on a user part, after an unmarked long system prompt
        [
            {"role": "system", "content": LONG},
            {
                "role": "user",
                "content": [{"type": "text", "text": "hi", "cache_control": EPHEMERAL}],
            },
        ],
        # inside a tool result
        [
            {"role": "system", "content": LONG},
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "search_docs", "arguments": "{}"},
                    }
                ],
            },
            {
                "role": "tool",
                "tool_call_id": "call_1",
                "content": [{"type": "text", "text": "found", "cache_control": EPHEMERAL}],
            },
        ],
    ],
)
def test_a_request_with_its_own_breakpoints_is_left_as_it_is(own: list[dict[str, Any]]) -> None:
    body = translate(own, tools=[TOOL])
    assert marks(body) == 1  # the client's, passed on
    assert "cache_control" not in body["tools"][-1]
    # Without the client's breakpoint, the same request gets the gateway's two.
    mark = b',"cache_control":{"type":"ephemeral"}'
    unmarked = orjson.loads(orjson.dumps(own).replace(mark, b""))
    assert marks(translate(unmarked, tools=[TOOL])) == 2


def test_the_marked_prefix_is_byte_stable_and_the_client_body_is_untouched() -> None:
    def prefix(question: str) -> tuple[bytes, dict[str, Any]]:
        request = chat(
            [{"role": "system", "content": LONG}, {"role": "user", "content": question}],
            tools=[TOOL],
        )
        before = copy.deepcopy(request.body)
        body = translate_request(request, "claude-sonnet-4-0", 1000, ON).body
        assert request.body == before
        return orjson.dumps([body["tools"], body["system"]]), body

    first, body = prefix("first question")
    second, _ = prefix("a different question")
    assert first == second
    assert marks(body) == 2
