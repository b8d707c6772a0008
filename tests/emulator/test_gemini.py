"""Gemini wire format over a real socket: generate, stream, functions, embeddings, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .support import GEMINI_HEADERS, Emulator, parse_sse

GENERATE = "/v1beta/models/gemini-2.0-flash:generateContent"
STREAM = "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
WEATHER = {
    "name": "get_weather",
    "description": "Current weather",
    "parameters": {
        "type": "OBJECT",
        "properties": {"city": {"type": "STRING"}, "days": {"type": "INTEGER"}},
        "required": ["city", "days"],
    },
}
CLOCK = {"name": "get_time", "parameters": {"type": "OBJECT", "properties": {}}}


def request(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "systemInstruction": {"parts": [{"text": "You are terse."}]},
        "contents": [{"role": "user", "parts": [{"text": "Tell me about the weather in Paris"}]}],
    }
    return {**body, **overrides}


async def test_generate_content_response(emulator: Emulator) -> None:
    status, body, resp = await emulator.post(GENERATE, request(), GEMINI_HEADERS)
    assert status == 200
    assert resp.headers["Content-Type"].startswith("application/json")
    (candidate,) = body["candidates"]
    assert candidate["content"]["role"] == "model"
    assert candidate["content"]["parts"] == [
        {
            "text": "Emulated reply to: Tell me about the weather in Paris "
            "lorem ipsum dolor sit amet consectetur adipiscing elit"
        }
    ]
    assert (candidate["finishReason"], candidate["index"]) == ("STOP", 0)
    assert {r["probability"] for r in candidate["safetyRatings"]} == {"NEGLIGIBLE"}
    usage = body["usageMetadata"]
    assert (usage["promptTokenCount"], usage["candidatesTokenCount"]) == (16, 18)
    assert usage["totalTokenCount"] == 34
    assert body["modelVersion"] == "gemini-2.0-flash"
    assert body["responseId"]


async def test_key_in_query_and_snake_case_fields(emulator: Emulator) -> None:
    body = {
        "system_instruction": {"parts": [{"text": "terse"}]},
        "contents": [{"parts": [{"text": "hi"}]}],
        "generation_config": {"max_output_tokens": 2, "candidate_count": 2},
    }
    status, answer, _ = await emulator.post(GENERATE + "?key=gm-test", body)
    assert status == 200
    assert [c["finishReason"] for c in answer["candidates"]] == ["MAX_TOKENS", "MAX_TOKENS"]
    assert answer["usageMetadata"]["candidatesTokenCount"] == 4


async def test_sse_stream_matches_the_unary_answer(emulator: Emulator) -> None:
    status, text, resp = await emulator.post(STREAM + "?alt=sse", request(), GEMINI_HEADERS)
    assert status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    assert "\r\n\r\n" in text
    assert "[DONE]" not in text
    chunks = [data for _, data in parse_sse(text)]
    assert len(chunks) == 18
    assert all("finishReason" not in c["candidates"][0] for c in chunks[:-1])
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    counts = [c["usageMetadata"].get("candidatesTokenCount", 0) for c in chunks]
    assert counts == list(range(1, 19))
    _, unary, _ = await emulator.post(GENERATE, request(), GEMINI_HEADERS)
    text_parts = "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks)
    assert text_parts == unary["candidates"][0]["content"]["parts"][0]["text"]
    assert chunks[-1]["usageMetadata"] == unary["usageMetadata"]


async def test_stream_without_alt_sse_is_a_json_array(emulator: Emulator) -> None:
    body = request(generationConfig={"maxOutputTokens": 3})
    status, answer, _ = await emulator.post(STREAM, body, GEMINI_HEADERS)
    assert status == 200
    assert isinstance(answer, list)
    assert len(answer) == 3
    assert answer[-1]["candidates"][0]["finishReason"] == "MAX_TOKENS"


async def test_function_calling_round_trip(emulator: Emulator) -> None:
    body = request(tools=[{"functionDeclarations": [WEATHER, CLOCK]}])
    body["contents"][0]["parts"][0]["text"] = "weather and time [[parallel_tools]]"
    _, answer, _ = await emulator.post(GENERATE, body, GEMINI_HEADERS)
    parts = answer["candidates"][0]["content"]["parts"]
    assert parts == [
        {"functionCall": {"name": "get_weather", "args": {"city": "example", "days": 1}}},
        {"functionCall": {"name": "get_time", "args": {}}},
    ]
    assert answer["candidates"][0]["finishReason"] == "STOP"
    body["contents"] += [
        {"role": "model", "parts": parts},
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
                {"functionResponse": {"name": "get_time", "response": {"time": "noon"}}},
            ],
        },
    ]
    _, reply, _ = await emulator.post(GENERATE, body, GEMINI_HEADERS)
    text = reply["candidates"][0]["content"]["parts"][0]["text"]
    assert text.startswith('Emulated reply to tool result: {"temp": 21} {"time": "noon"}')
    forced = request(
        tools=[{"functionDeclarations": [WEATHER, CLOCK]}],
        toolConfig={"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}},
    )
    _, text_body, _ = await emulator.post(STREAM + "?alt=sse", forced, GEMINI_HEADERS)
    (only,) = [data for _, data in parse_sse(text_body)]
    assert only["candidates"][0]["content"]["parts"][0]["functionCall"]["name"] == "get_time"


async def test_json_output_from_response_schema(emulator: Emulator) -> None:
    schema = {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}}
    config = {"responseMimeType": "application/json", "responseSchema": schema}
    _, answer, _ = await emulator.post(GENERATE, request(generationConfig=config), GEMINI_HEADERS)
    text = answer["candidates"][0]["content"]["parts"][0]["text"]
    assert json.loads(text) == {"city": "example"}


async def test_inline_images_count_fixed_tokens(emulator: Emulator) -> None:
    parts = [{"text": "what is this"}, {"inlineData": {"mimeType": "image/png", "data": "AAAA"}}]
    body = {"contents": [{"role": "user", "parts": parts}]}
    _, answer, _ = await emulator.post(GENERATE, body, GEMINI_HEADERS)
    assert answer["usageMetadata"]["promptTokenCount"] == 3 + 3 + 85


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"contents": []}, "contents is not specified"),
        ({"contents": [{"role": "user", "parts": []}]}, "must not be empty"),
        ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "valid role"),
        (
            {
                "contents": [
                    {"role": "user", "parts": [{"text": "x"}]},
                    {
                        "role": "user",
                        "parts": [{"functionResponse": {"name": "f", "response": {}}}],
                    },
                ]
            },
            "function response turn comes immediately after a function call turn",
        ),
        (
            request(tools=[{"functionDeclarations": [{"name": "9bad name"}]}]),
            "Invalid function name",
        ),
    ],
)
async def test_invalid_requests(emulator: Emulator, body: dict[str, Any], fragment: str) -> None:
    status, answer, _ = await emulator.post(GENERATE, body, GEMINI_HEADERS)
    assert status == 400
    assert (answer["error"]["code"], answer["error"]["status"]) == (400, "INVALID_ARGUMENT")
    assert fragment in answer["error"]["message"]


async def test_auth_and_model_errors(start_emulator: Any) -> None:
    emulator = await start_emulator(api_keys=frozenset({"good"}))
    status, answer, _ = await emulator.post(GENERATE, request())
    assert (status, answer["error"]["status"]) == (403, "PERMISSION_DENIED")
    status, answer, _ = await emulator.post(GENERATE, request(), {"x-goog-api-key": "bad"})
    assert (status, answer["error"]["status"]) == (400, "INVALID_ARGUMENT")
    assert answer["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    status, answer, _ = await emulator.post(
        "/v1beta/models/nope:generateContent", request(), {"x-goog-api-key": "good"}
    )
    assert (status, answer["error"]["status"]) == (404, "NOT_FOUND")
    assert "models/nope is not found" in answer["error"]["message"]


async def test_embeddings(emulator: Emulator) -> None:
    path = "/v1beta/models/text-embedding-004:embedContent"
    content = {"parts": [{"text": "hello world"}]}
    status, one, _ = await emulator.post(path, {"content": content}, GEMINI_HEADERS)
    assert status == 200
    assert len(one["embedding"]["values"]) == 8
    batch = {
        "requests": [
            {"model": "models/text-embedding-004", "content": content},
            {
                "model": "models/text-embedding-004",
                "content": {"parts": [{"text": "bye"}]},
                "outputDimensionality": 3,
            },
        ]
    }
    status, many, _ = await emulator.post(
        "/v1beta/models/text-embedding-004:batchEmbedContents", batch, GEMINI_HEADERS
    )
    assert status == 200
    assert many["embeddings"][0] == one["embedding"]
    assert len(many["embeddings"][1]["values"]) == 3
    status, _, _ = await emulator.post(
        "/v1beta/models/gemini-2.0-flash:embedContent", {"content": content}, GEMINI_HEADERS
    )
    assert status == 404


async def test_models_listing(emulator: Emulator) -> None:
    status, answer = await emulator.get("/v1beta/models", GEMINI_HEADERS)
    assert status == 200
    names = {m["name"] for m in answer["models"]}
    assert {"models/gemini-2.0-flash", "models/text-embedding-004"} <= names
    status, answer = await emulator.get("/v1beta/models/gemini-2.0-flash", GEMINI_HEADERS)
    assert (status, answer["name"]) == (200, "models/gemini-2.0-flash")
    assert "generateContent" in answer["supportedGenerationMethods"]
