"""The Responses API's translators, alone: a Responses request into a chat request
(responses/request.py, responses/items.py) and a chat answer into a Response object
(responses/output.py), checked against the official SDK's own types. The stream's events:
test_responses_events.py."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.responses import Response

from ai_gateway.errors import InvalidRequestError
from ai_gateway.responses import items as it
from ai_gateway.responses import output as out
from ai_gateway.responses.records import Turn
from ai_gateway.responses.request import translate
from ai_gateway.schemas.responses import ResponsesRequest
from ai_gateway.schemas.validation import parse_body


def call(body: dict[str, Any], turns: list[Turn] | None = None, store: bool = True) -> Any:
    return translate(body, parse_body(ResponsesRequest, body), turns or [], store)


# -- requests ------------------------------------------------------------------------------------


def test_a_string_input_with_instructions() -> None:
    made = call({"model": "m", "input": "hello", "instructions": "Be brief."})
    assert made.chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello"},
    ]
    [item] = made.input_items
    assert item["id"].startswith("msg_")
    assert item["content"] == [{"type": "input_text", "text": "hello"}]
    assert made.echo["instructions"] == "Be brief."
    assert made.echo["store"] is True


def test_items_become_messages_with_tool_calls_merged() -> None:
    body = {
        "model": "m",
        "input": [
            {"role": "developer", "content": "rules"},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "look"},
                    {"type": "input_image", "image_url": "https://x/cat.png", "detail": "low"},
                ],
            },
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "ok"}],
            },
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "g", "arguments": '{"a":1}'},
            {"type": "function_call_output", "call_id": "c1", "output": "one"},
            {
                "type": "function_call_output",
                "call_id": "c2",
                "output": [{"type": "input_text", "text": "two"}],
            },
            {"type": "reasoning", "id": "rs_1", "summary": []},
        ],
    }
    messages = call(body).chat["messages"]
    assert messages[0] == {"role": "developer", "content": "rules"}
    assert messages[1]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "https://x/cat.png", "detail": "low"},
    }
    assert messages[2]["role"] == "assistant"
    assert messages[2]["content"] == "ok"
    assert [c["id"] for c in messages[2]["tool_calls"]] == ["c1", "c2"]
    assert messages[3:] == [
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "tool", "tool_call_id": "c2", "content": "two"},
    ]  # the reasoning item has no place in a chat request


def test_earlier_turns_come_first_without_their_instructions() -> None:
    earlier = Turn(
        "resp_1",
        it.normalize("first question"),
        [out.message_item("msg_a", [out.text_part("first answer")])],
    )
    made = call({"model": "m", "input": "second", "instructions": "now"}, [earlier])
    assert made.chat["messages"] == [
        {"role": "system", "content": "now"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second"},
    ]
    assert [i["content"][0]["text"] for i in made.input_items] == ["second"]


def test_parameters() -> None:
    body = {
        "model": "m",
        "input": "x",
        "stream": True,
        "max_output_tokens": 50,
        "temperature": 0.2,
        "top_p": 0.9,
        "reasoning": {"effort": "low", "summary": "auto"},
        "text": {
            "format": {
                "type": "json_schema",
                "name": "out",
                "schema": {"type": "object"},
                "strict": True,
            }
        },
        "truncation": "auto",
        "safety_identifier": "u-1",
        "metadata": {"k": "v"},
        "store": False,
        "cache": {"no_cache": True},
    }
    chat = call(body, store=False).chat
    assert chat["stream"] is True
    assert chat["stream_options"] == {"include_usage": True}
    assert chat["max_completion_tokens"] == 50
    assert chat["reasoning_effort"] == "low"
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True},
    }
    assert chat["context_strategy"] == "truncate-oldest"
    assert chat["user"] == "u-1"
    assert chat["cache"] == {"no_cache": True}
    for gateway_only in ("metadata", "store", "truncation", "reasoning", "text"):
        assert gateway_only not in chat


def test_tools_and_tool_choice() -> None:
    fn = {"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True}
    fs = {"type": "file_search", "vector_store_ids": ["vs_1"], "max_num_results": 3}
    made = call(
        {
            "model": "m",
            "input": "x",
            "tools": [fn, fs],
            "tool_choice": {"type": "function", "name": "f"},
        }
    )
    assert made.chat["tools"] == [
        {
            "type": "function",
            "function": {"name": "f", "parameters": {"type": "object"}, "strict": True},
        },
        fs,
    ]
    assert made.chat["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert made.file_search
    allowed = {
        "type": "allowed_tools",
        "mode": "required",
        "tools": [{"type": "function", "name": "g"}],
    }
    g = {**fn, "name": "g"}
    limited = call({"model": "m", "input": "x", "tools": [fn, g], "tool_choice": allowed})
    assert [t["function"]["name"] for t in limited.chat["tools"]] == ["g"]
    assert limited.chat["tool_choice"] == "required"


def test_prompt_versions_and_labels() -> None:
    by_number = call({"prompt": {"id": "greet", "version": "3", "variables": {"name": "Ada"}}})
    assert by_number.chat["prompt"] == {"id": "greet", "version": 3, "variables": {"name": "Ada"}}
    assert "model" not in by_number.chat
    by_label = call(
        {
            "prompt": {
                "id": "greet",
                "version": "prod",
                "variables": {"n": {"type": "input_text", "text": "x"}},
            }
        }
    )
    assert by_label.chat["prompt"] == {"id": "greet", "label": "prod", "variables": {"n": "x"}}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"background": True}, "background"),
        ({"conversation": {"id": "c"}}, "conversation"),
        ({"tools": [{"type": "code_interpreter"}]}, "tools[0].type"),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0].image_url",
        ),
        ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
        ({"input": []}, "input"),
        ({"tool_choice": {"type": "web_search"}}, "tool_choice"),
    ],
)
def test_refusals_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        call({"model": "m", "input": "x", **body})
    assert refused.value.param == param
    assert refused.value.status == 400


def test_schema_names_the_field() -> None:
    for body, param in (
        ({"input": "x"}, "model"),
        ({"model": "m", "temperature": 2.5}, "temperature"),
        ({"model": "m", "text": {"format": {"type": "json_schema"}}}, "text.format"),
        ({"model": "m", "metadata": {"k": 1}}, "metadata.k"),
    ):
        with pytest.raises(InvalidRequestError) as refused:
            parse_body(ResponsesRequest, body)
        assert refused.value.param == param, body


# -- answers -------------------------------------------------------------------------------------


def answer(message: dict[str, Any], finish: str = "stop", **extra: Any) -> dict[str, Any]:
    return {
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
        ],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 2},
            "cache_creation_input_tokens": 3,
        },
        **extra,
    }


def response_of(items: list[Any], finish: str | None, usage: Any = None) -> dict[str, Any]:
    echo = call({"model": "m", "input": "x"}).echo
    return out.response_object(
        "resp_1", 1, "m", echo, status="completed", output=items, usage=usage, finish_reason=finish
    )


def test_an_answer_as_a_response() -> None:
    chat = answer(
        {
            "content": "hi",
            "reasoning_content": "thinking",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        finish="tool_calls",
    )
    items, finish = out.output_items(chat, with_logprobs=False)
    assert [i["type"] for i in items] == ["reasoning", "message", "function_call"]
    assert items[2]["call_id"] == "call_1"
    response = response_of(items, finish, out.usage(chat["usage"]))
    parsed = Response.model_validate(response)
    assert parsed.output_text == "hi"
    assert response["usage"] == {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 3},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 2},
        "total_tokens": 15,
    }


def test_length_and_content_filter_are_incomplete() -> None:
    for finish, reason in (("length", "max_output_tokens"), ("content_filter", "content_filter")):
        items, _ = out.output_items(answer({"content": "cut"}, finish), with_logprobs=False)
        response = response_of(items, finish)
        assert response["status"] == "incomplete"
        assert response["incomplete_details"] == {"reason": reason}


def test_logprobs_when_included() -> None:
    logprobs = [{"token": "hi", "logprob": -0.1, "bytes": [104, 105], "top_logprobs": []}]
    chat = answer({"content": "hi"})
    chat["choices"][0]["logprobs"] = {"content": logprobs}
    items, _ = out.output_items(chat, with_logprobs=True)
    assert items[0]["content"][0]["logprobs"] == logprobs
    plain, _ = out.output_items(chat, with_logprobs=False)
    assert "logprobs" not in plain[0]["content"][0]
    made = call(
        {"model": "m", "input": "x", "include": ["message.output_text.logprobs"], "top_logprobs": 2}
    )
    assert made.chat["logprobs"] is True
    assert made.chat["top_logprobs"] == 2
