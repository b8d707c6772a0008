"""OpenAI chat request -> Gemini GenerateContentRequest."""

from __future__ import annotations

from typing import Any

import pytest

from ai_gateway.errors import InvalidRequestError
from ai_gateway.providers.gemini_request import build_request
from ai_gateway.schemas.chat import ChatCompletionRequest
from ai_gateway.schemas.validation import parse_body

USER = {"role": "user", "content": "hi"}


def gemini(**body: Any) -> dict[str, Any]:
    return build_request(parse_body(ChatCompletionRequest, {"model": "m", **body}))


def refused(**body: Any) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as info:
        gemini(**body)
    return info.value


def user_parts(*parts: dict[str, Any]) -> list[dict[str, Any]]:
    return gemini(messages=[{"role": "user", "content": list(parts)}])["contents"][0]["parts"]


def call(call_id: str, name: str, arguments: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments},
        **extra,
    }


def test_roles_system_instruction_and_merged_turns() -> None:
    body = gemini(
        messages=[
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "one"},
            {"role": "user", "content": [{"type": "text", "text": "two"}]},
            {"role": "assistant", "content": "three"},
            {"role": "developer", "content": [{"type": "text", "text": "Use SI units."}]},
            {"role": "assistant", "content": "four"},
            {"role": "user", "content": "five"},
        ]
    )
    assert body == {
        "systemInstruction": {"parts": [{"text": "Be terse."}, {"text": "Use SI units."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "one"}, {"text": "two"}]},
            {"role": "model", "parts": [{"text": "three"}, {"text": "four"}]},
            {"role": "user", "parts": [{"text": "five"}]},
        ],
    }


def test_empty_text_is_left_out_and_an_empty_turn_dropped() -> None:
    body = gemini(
        messages=[
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": ""},
            {
                "role": "user",
                "content": [{"type": "text", "text": ""}, {"type": "text", "text": "b"}],
            },
        ]
    )
    assert body["contents"] == [{"role": "user", "parts": [{"text": "a"}, {"text": "b"}]}]


def test_only_system_messages_is_a_clear_400() -> None:
    err = refused(messages=[{"role": "system", "content": "hello"}])
    assert err.status == 400
    assert err.param == "messages"


def test_system_messages_take_text_only() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}
    err = refused(messages=[{"role": "system", "content": [image]}, USER])
    assert err.param == "messages[0].content[0]"


def test_images_as_inline_data_and_file_data() -> None:
    parts = user_parts(
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png?size=2"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/render"}},
    )
    assert parts == [
        {"inlineData": {"mimeType": "image/jpeg", "data": "QUJD"}},
        {"fileData": {"fileUri": "https://example.com/cat.png?size=2", "mimeType": "image/png"}},
        {"fileData": {"fileUri": "https://example.com/render"}},
    ]


@pytest.mark.parametrize(
    "url", ["ftp://example.com/a.png", "data:image/png,notbase64", "data:;base64,QUJD"]
)
def test_unusable_image_urls_are_400_naming_the_part(url: str) -> None:
    err = refused(
        messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]
    )
    assert err.param == "messages[0].content[0].image_url.url"


def test_audio_and_inline_files() -> None:
    parts = user_parts(
        {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE"}},
    )
    assert parts == [
        {"inlineData": {"mimeType": "audio/wav", "data": "UklG"}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}},
    ]


@pytest.mark.parametrize(
    "part",
    [
        {"type": "file", "file": {"file_id": "file-abc"}},
        {"type": "input_audio", "input_audio": {"data": "x", "format": "flac"}},
        {"type": "video_frame", "data": "x"},
    ],
)
def test_parts_gemini_cannot_take_are_400(part: dict[str, Any]) -> None:
    err = refused(messages=[{"role": "user", "content": [part]}])
    assert err.param == "messages[0].content[0]"
    assert err.status == 400


def test_tool_calls_results_and_thought_signatures() -> None:
    body = gemini(
        messages=[
            USER,
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    call(
                        "call_a",
                        "get_weather",
                        '{"city": "Paris", "days": [1, 2]}',
                        extra_content={"google": {"thought_signature": "c2lnbmF0dXJl"}},
                    ),
                    call("call_b", "get_time", ""),
                ],
            },
            {"role": "tool", "tool_call_id": "call_b", "content": "noon"},
            {"role": "tool", "tool_call_id": "call_a", "content": '{"temp": 21}'},
            {"role": "user", "content": "thanks"},
        ]
    )
    assert body["contents"][1:] == [
        {
            "role": "model",
            "parts": [
                {"text": "Checking."},
                {
                    "functionCall": {
                        "name": "get_weather",
                        "args": {"city": "Paris", "days": [1, 2]},
                    },
                    "thoughtSignature": "c2lnbmF0dXJl",
                },
                {"functionCall": {"name": "get_time", "args": {}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_time", "response": {"result": "noon"}}},
                {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
                {"text": "thanks"},
            ],
        },
    ]


@pytest.mark.parametrize("content", ["[1, 2]", '"quoted"', "42", "not json {"])
def test_tool_results_that_are_not_json_objects_are_wrapped(content: str) -> None:
    body = gemini(
        messages=[
            USER,
            {"role": "assistant", "tool_calls": [call("c1", "f", "{}")]},
            {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": content}]},
        ]
    )
    part = body["contents"][2]["parts"][0]
    assert part == {"functionResponse": {"name": "f", "response": {"result": content}}}


@pytest.mark.parametrize(("arguments", "problem"), [("{oops", "not valid JSON"), ("[1]", "object")])
def test_bad_tool_call_arguments_are_400_naming_the_message(arguments: str, problem: str) -> None:
    err = refused(
        messages=[
            USER,
            {
                "role": "assistant",
                "tool_calls": [call("c1", "f", "{}"), call("c2", "g", arguments)],
            },
        ]
    )
    assert err.param == "messages[1].tool_calls[1].function.arguments"
    assert problem in err.message


def test_tool_result_for_an_unknown_call_is_400() -> None:
    err = refused(messages=[USER, {"role": "tool", "tool_call_id": "nope", "content": "x"}])
    assert err.param == "messages[1].tool_call_id"
    assert "'nope'" in err.message


def test_legacy_function_messages() -> None:
    body = gemini(
        messages=[
            USER,
            {"role": "assistant", "function_call": {"name": "f", "arguments": '{"a": 1}'}},
            {"role": "function", "name": "f", "content": '{"ok": true}'},
        ],
        functions=[{"name": "f", "description": "does f", "parameters": {"type": "object"}}],
        function_call={"name": "f"},
    )
    assert body["contents"][1:] == [
        {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"a": 1}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"ok": True}}}]},
    ]
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {"name": "f", "description": "does f", "parametersJsonSchema": {"type": "object"}}
            ]
        }
    ]
    assert body["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}
    }


def test_generation_config() -> None:
    body = gemini(
        messages=[USER],
        max_tokens=10,
        max_completion_tokens=20,
        temperature=0.5,
        top_p=0.9,
        top_k=40,
        stop="END",
        n=2,
        presence_penalty=0.1,
        frequency_penalty=-0.2,
        seed=7,
        user="u-1",
        logprobs=True,
        parallel_tool_calls=False,
    )
    assert body["generationConfig"] == {
        "maxOutputTokens": 20,
        "temperature": 0.5,
        "topP": 0.9,
        "topK": 40,
        "stopSequences": ["END"],
        "candidateCount": 2,
        "presencePenalty": 0.1,
        "frequencyPenalty": -0.2,
        "seed": 7,
    }
    assert set(body) == {"contents", "generationConfig"}  # user, logprobs...: dropped
    assert gemini(messages=[USER], max_tokens=10)["generationConfig"] == {"maxOutputTokens": 10}
    assert "generationConfig" not in gemini(messages=[USER])


SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("response_format", "config"),
    [
        ({"type": "text"}, None),
        ({"type": "json_object"}, {"responseMimeType": "application/json"}),
        (
            {
                "type": "json_schema",
                "json_schema": {"name": "city", "schema": SCHEMA, "strict": True},
            },
            {"responseMimeType": "application/json", "responseJsonSchema": SCHEMA},
        ),
    ],
)
def test_response_format(response_format: dict[str, Any], config: dict[str, Any] | None) -> None:
    body = gemini(messages=[USER], response_format=response_format)
    assert body.get("generationConfig") == config


TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather",
        "parameters": SCHEMA,
        "strict": True,
    },
}


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        (None, None),
        ("auto", {"mode": "AUTO"}),
        ("required", {"mode": "ANY"}),
        ("none", {"mode": "NONE"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
        ),
    ],
)
def test_tools_and_tool_choice(choice: object, config: dict[str, Any] | None) -> None:
    extra = {} if choice is None else {"tool_choice": choice}
    body = gemini(
        messages=[USER], tools=[TOOL, {"type": "function", "function": {"name": "noop"}}], **extra
    )
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {"name": "get_weather", "description": "Weather", "parametersJsonSchema": SCHEMA},
                {"name": "noop"},
            ]
        }
    ]
    assert body.get("toolConfig") == (None if config is None else {"functionCallingConfig": config})


def test_tool_choice_without_tools_is_dropped() -> None:
    assert set(gemini(messages=[USER], tool_choice="required")) == {"contents"}


def test_non_function_tools_are_400() -> None:
    err = refused(messages=[USER], tools=[{"type": "web_search"}])
    assert err.param == "tools[0]"
