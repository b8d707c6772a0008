"""OpenAI chat request -> Anthropic Messages request: the pure translation."""

from __future__ import annotations

from typing import Any

import pytest

from ai_gateway.errors import InvalidRequestError
from ai_gateway.providers.anthropic_request import (
    RESPONSE_TOOL,
    MessagesCall,
    translate_request,
)
from ai_gateway.providers.base import ChatRequest
from ai_gateway.schemas.chat import ChatCompletionRequest
from ai_gateway.schemas.validation import parse_body

MODEL = "claude-sonnet-4-20250514"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def chat(messages: list[dict[str, Any]], **fields: Any) -> ChatRequest:
    body = {"model": "claude", "messages": messages, **fields}
    return ChatRequest(body=body, parsed=parse_body(ChatCompletionRequest, body))


def translate(messages: list[dict[str, Any]], **fields: Any) -> MessagesCall:
    return translate_request(chat(messages, **fields), MODEL, 1234)


def body_of(messages: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return translate(messages, **fields).body


def refused(messages: list[dict[str, Any]], **fields: Any) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as info:
        translate(messages, **fields)
    assert info.value.status == 400
    return info.value


def test_system_and_developer_messages_become_system_blocks_in_order() -> None:
    body = body_of(
        [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "hi"},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
            {"role": "assistant", "content": "Salut"},
            {"role": "system", "content": "No emojis."},
            {"role": "user", "content": "again"},
        ]
    )
    assert body["system"] == [
        {"type": "text", "text": "Be terse."},
        {"type": "text", "text": "Use French."},
        {"type": "text", "text": "No emojis."},
    ]
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Salut"}]},
        {"role": "user", "content": [{"type": "text", "text": "again"}]},
    ]
    assert body["model"] == MODEL
    assert "stream" not in body


def test_no_system_key_without_system_messages() -> None:
    assert "system" not in body_of([{"role": "user", "content": "hi"}])


def test_consecutive_same_role_turns_are_merged() -> None:
    body = body_of(
        [
            {"role": "user", "content": "one"},
            {"role": "user", "content": [{"type": "text", "text": "two"}]},
            {"role": "assistant", "content": "a"},
            {"role": "assistant", "content": "b"},
        ]
    )
    assert [m["role"] for m in body["messages"]] == ["user", "assistant"]
    assert [b["text"] for b in body["messages"][0]["content"]] == ["one", "two"]
    assert [b["text"] for b in body["messages"][1]["content"]] == ["a", "b"]


def test_max_tokens_prefers_max_completion_tokens_then_max_tokens_then_default() -> None:
    messages = [{"role": "user", "content": "hi"}]
    assert body_of(messages, max_completion_tokens=7, max_tokens=9)["max_tokens"] == 7
    assert body_of(messages, max_tokens=9)["max_tokens"] == 9
    assert body_of(messages)["max_tokens"] == 1234


def test_sampling_parameters() -> None:
    body = body_of(
        [{"role": "user", "content": "hi"}],
        temperature=0.5,
        top_p=0.9,
        top_k=40,
        stop="END",
        user="user-42",
        seed=3,
        presence_penalty=1.0,
        frequency_penalty=1.0,
        logprobs=True,
        top_logprobs=2,
        logit_bias={"1": 2},
        stream_options={"include_usage": True},
    )
    assert body["temperature"] == 0.5
    assert body["top_p"] == 0.9
    assert body["top_k"] == 40
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "user-42"}
    dropped = {"seed", "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs"}
    assert not dropped & set(body)
    assert not {"logit_bias", "stream_options", "user", "stop", "n"} & set(body)
    list_stop = body_of([{"role": "user", "content": "hi"}], stop=["a", "b"])
    assert list_stop["stop_sequences"] == ["a", "b"]


def test_temperature_above_one_is_a_400_naming_the_range() -> None:
    err = refused([{"role": "user", "content": "hi"}], temperature=1.5)
    assert err.param == "temperature"
    assert "0 to 1" in err.message
    assert body_of([{"role": "user", "content": "hi"}], temperature=1)["temperature"] == 1


def test_n_above_one_is_a_400() -> None:
    err = refused([{"role": "user", "content": "hi"}], n=2)
    assert err.param == "n"
    assert "one candidate" in err.message
    assert "n" not in body_of([{"role": "user", "content": "hi"}], n=1)


def test_tools_and_tool_choice() -> None:
    messages = [{"role": "user", "content": "weather?"}]
    body = body_of(messages, tools=[WEATHER])
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    assert "tool_choice" not in body
    choices = {
        "auto": {"type": "auto"},
        "required": {"type": "any"},
        "none": {"type": "none"},
    }
    for given, expected in choices.items():
        assert body_of(messages, tools=[WEATHER], tool_choice=given)["tool_choice"] == expected
    named = {"type": "function", "function": {"name": "get_weather"}}
    assert body_of(messages, tools=[WEATHER], tool_choice=named)["tool_choice"] == {
        "type": "tool",
        "name": "get_weather",
    }


def test_parallel_tool_calls_false_disables_parallel_tool_use() -> None:
    messages = [{"role": "user", "content": "weather?"}]
    body = body_of(messages, tools=[WEATHER], parallel_tool_calls=False)
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    body = body_of(messages, tools=[WEATHER], parallel_tool_calls=False, tool_choice="required")
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    body = body_of(messages, tools=[WEATHER], parallel_tool_calls=False, tool_choice="none")
    assert body["tool_choice"] == {"type": "none"}
    assert "tool_choice" not in body_of(messages, tools=[WEATHER], parallel_tool_calls=True)


def test_tool_without_parameters_gets_an_empty_object_schema() -> None:
    tool = {"type": "function", "function": {"name": "now"}}
    body = body_of([{"role": "user", "content": "time?"}], tools=[tool])
    assert body["tools"] == [{"name": "now", "input_schema": {"type": "object", "properties": {}}}]


def test_forcing_a_tool_without_tools_is_a_400() -> None:
    assert refused([{"role": "user", "content": "x"}], tool_choice="required").param == (
        "tool_choice"
    )
    body = body_of([{"role": "user", "content": "x"}], tool_choice="auto")
    assert "tool_choice" not in body


def test_assistant_tool_calls_and_tool_results() -> None:
    body = body_of(
        [
            {"role": "user", "content": "weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {
                "role": "tool",
                "tool_call_id": "call_2",
                "content": [{"type": "text", "text": "21C"}],
            },
            {"role": "user", "content": "Thanks, summarise."},
        ],
        tools=[WEATHER],
    )
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "weather in Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "call_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "call_2",
                    "content": [{"type": "text", "text": "21C"}],
                },
                {"type": "text", "text": "Thanks, summarise."},
            ],
        },
    ]


def test_tool_results_come_first_in_their_user_turn() -> None:
    body = body_of(
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "user", "content": "meanwhile..."},
            {"role": "tool", "tool_call_id": "c1", "content": ""},
        ]
    )
    assert body["messages"][1]["content"] == [
        {"type": "tool_result", "tool_use_id": "c1"},
        {"type": "text", "text": "meanwhile..."},
    ]


def test_invalid_tool_call_arguments_are_a_400_naming_the_message() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
    messages = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
    ]
    err = refused(messages)
    assert err.param == "messages[1].tool_calls[0].function.arguments"
    assert "not valid JSON" in err.message
    call["function"]["arguments"] = "[1, 2]"  # type: ignore[index]
    assert "JSON object" in refused(messages).message


def test_empty_assistant_messages_are_left_out_and_empty_user_turns_refused() -> None:
    body = body_of(
        [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": ""},
            {"role": "user", "content": "b"},
        ]
    )
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]
    err = refused(
        [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "x"},
            {"role": "user", "content": ""},
        ]
    )
    assert err.param == "messages[2].content"


def test_legacy_functions_api_is_refused() -> None:
    fn = {"name": "f", "parameters": {"type": "object"}}
    assert refused([{"role": "user", "content": "x"}], functions=[fn]).param == "functions"
    messages = [{"role": "user", "content": "x"}, {"role": "function", "name": "f", "content": "1"}]
    assert refused(messages).param == "messages[1].role"


def test_response_format_json_schema_is_a_forced_tool() -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    call = translate(
        [{"role": "user", "content": "x"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "reply", "schema": schema, "strict": True},
        },
    )
    assert call.response_tool == RESPONSE_TOOL
    assert call.body["tools"] == [
        {
            "name": RESPONSE_TOOL,
            "description": "Give the final answer as JSON ('reply').",
            "input_schema": schema,
        }
    ]
    assert call.body["tool_choice"] == {"type": "tool", "name": RESPONSE_TOOL}


def test_response_format_json_object_and_with_client_tools() -> None:
    messages = [{"role": "user", "content": "x"}]
    call = translate(messages, response_format={"type": "json_object"})
    assert call.body["tools"][0]["input_schema"] == {"type": "object"}
    call = translate(messages, response_format={"type": "json_object"}, tools=[WEATHER])
    assert [t["name"] for t in call.body["tools"]] == ["get_weather", RESPONSE_TOOL]
    assert call.body["tool_choice"] == {"type": "any"}
    call = translate(
        messages, response_format={"type": "json_object"}, tools=[WEATHER], tool_choice="none"
    )
    assert call.body["tool_choice"] == {"type": "tool", "name": RESPONSE_TOOL}
    plain = translate(messages, response_format={"type": "text"})
    assert plain.response_tool is None
    assert "tools" not in plain.body


def test_response_format_with_a_non_object_schema_or_name_clash_is_a_400() -> None:
    messages = [{"role": "user", "content": "x"}]
    fmt = {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "array"}}}
    assert refused(messages, response_format=fmt).param == "response_format.json_schema.schema"
    clash = {"type": "function", "function": {"name": RESPONSE_TOOL}}
    assert refused(messages, response_format={"type": "json_object"}, tools=[clash]).param == (
        "tools"
    )
