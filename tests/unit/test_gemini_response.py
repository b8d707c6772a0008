"""Gemini GenerateContentResponse -> OpenAI chat.completion; errors -> the gateway's error tree."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from ai_gateway import errors
from ai_gateway.providers.gemini_errors import map_gemini_error
from ai_gateway.providers.gemini_response import completion
from ai_gateway.routing.deployments import Deployment

KEY = "AIzaSyCANARYcanary-0123456789abcdef"
DEP = Deployment(
    id="gem/0", group="gem", provider="gemini", model="gemini-2.5-flash", api_base="u", api_key=KEY
)


def candidate(
    *parts: dict[str, Any], finish: str | None = "STOP", index: int = 0
) -> dict[str, Any]:
    result: dict[str, Any] = {"content": {"role": "model", "parts": list(parts)}, "index": index}
    if finish:
        result["finishReason"] = finish
    return result


def test_text_thoughts_tool_calls_and_usage() -> None:
    data = {
        "candidates": [
            candidate(
                {"text": "Let me think about the weather...", "thought": True},
                {"text": "Checking "},
                {"text": "now."},
                {
                    "functionCall": {"name": "get_weather", "args": {"city": "Paris", "n": [1, 2]}},
                    "thoughtSignature": "c2ln",
                },
                {"functionCall": {"name": "get_time"}},
            )
        ],
        "usageMetadata": {
            "promptTokenCount": 100,
            "candidatesTokenCount": 20,
            "thoughtsTokenCount": 30,
            "cachedContentTokenCount": 64,
            "totalTokenCount": 150,
        },
        "modelVersion": "gemini-2.5-flash-001",
        "responseId": "abc123",
    }
    result = completion(DEP, data)
    (choice,) = result["choices"]
    message = choice["message"]
    assert message["content"] == "Checking now."
    weather, clock = message["tool_calls"]
    assert weather["id"].startswith("call_")
    assert weather["id"] != clock["id"]
    assert weather["function"] == {"name": "get_weather", "arguments": '{"city":"Paris","n":[1,2]}'}
    assert weather["extra_content"] == {"google": {"thought_signature": "c2ln"}}
    assert clock["function"] == {"name": "get_time", "arguments": "{}"}
    assert "extra_content" not in clock
    assert choice["finish_reason"] == "tool_calls"
    assert result["id"] == "chatcmpl-abc123"
    assert result["object"] == "chat.completion"
    assert result["model"] == "gemini-2.5-flash-001"
    assert result["usage"] == {
        "prompt_tokens": 100,
        "completion_tokens": 50,
        "total_tokens": 150,
        "prompt_tokens_details": {"cached_tokens": 64},
        "completion_tokens_details": {"reasoning_tokens": 30},
    }


def test_one_choice_per_candidate() -> None:
    data = {
        "candidates": [
            candidate({"text": "a"}),
            candidate({"text": "b"}, finish="MAX_TOKENS", index=1),
        ]
    }
    result = completion(DEP, data)
    assert [
        (c["index"], c["message"]["content"], c["finish_reason"]) for c in result["choices"]
    ] == [
        (0, "a", "stop"),
        (1, "b", "length"),
    ]
    assert result["model"] == DEP.model
    assert result["usage"]["total_tokens"] == 0


@pytest.mark.parametrize(
    ("reason", "with_calls", "expected"),
    [
        ("STOP", False, "stop"),
        ("STOP", True, "tool_calls"),
        ("MAX_TOKENS", False, "length"),
        ("MAX_TOKENS", True, "length"),
        *[
            (r, calls, "content_filter")
            for r in (
                "SAFETY",
                "RECITATION",
                "BLOCKLIST",
                "PROHIBITED_CONTENT",
                "SPII",
                "IMAGE_SAFETY",
                "IMAGE_PROHIBITED_CONTENT",
                "IMAGE_RECITATION",
            )
            for calls in (False, True)
        ],
        # Everything else: tool_calls when there are calls, else stop.
        ("OTHER", False, "stop"),
        ("LANGUAGE", False, "stop"),
        ("MALFORMED_FUNCTION_CALL", False, "stop"),
        ("FINISH_REASON_UNSPECIFIED", False, "stop"),
        ("FUNCTION_CALL", True, "tool_calls"),
        ("SOMETHING_NEW", True, "tool_calls"),
    ],
)
def test_every_finish_reason(reason: str, with_calls: bool, expected: str) -> None:
    parts = [{"functionCall": {"name": "f", "args": {}}}] if with_calls else [{"text": "x"}]
    result = completion(DEP, {"candidates": [candidate(*parts, finish=reason)]})
    assert result["choices"][0]["finish_reason"] == expected


def test_safety_stop_without_content() -> None:
    data = {"candidates": [{"finishReason": "SAFETY", "index": 0, "safetyRatings": []}]}
    (choice,) = completion(DEP, data)["choices"]
    assert choice["message"] == {"role": "assistant", "content": None}
    assert choice["finish_reason"] == "content_filter"


def test_blocked_prompt_raises_content_filtered_naming_the_reason() -> None:
    data = {
        "promptFeedback": {
            "blockReason": "PROHIBITED_CONTENT",
            "safetyRatings": [
                {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True},
                {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "LOW"},
            ],
        },
        "usageMetadata": {"promptTokenCount": 5},
    }
    with pytest.raises(errors.ContentFilteredError) as info:
        completion(DEP, data)
    err = info.value
    assert (err.status, err.code) == (400, "content_filter")
    assert "PROHIBITED_CONTENT" in err.message
    assert "HARM_CATEGORY_HARASSMENT" in err.message
    assert "HATE_SPEECH" not in err.message


@pytest.mark.parametrize("data", [{}, {"candidates": []}, [], "text"])
def test_no_candidates_and_no_reason_is_a_protocol_error(data: object) -> None:
    with pytest.raises(errors.UpstreamProtocolError):
        completion(DEP, data)


# --- errors ---------------------------------------------------------------------------------


def error_body(code: int, status: str, message: str, *details: dict[str, Any]) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return orjson.dumps({"error": error})


KEY_INVALID = {
    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
    "reason": "API_KEY_INVALID",
    "domain": "googleapis.com",
}


@pytest.mark.parametrize(
    ("status", "body", "expected_cls", "expected_status"),
    [
        (400, error_body(400, "INVALID_ARGUMENT", "API key not valid.", KEY_INVALID),
         errors.UpstreamAuthError, 502),
        (403, error_body(403, "PERMISSION_DENIED", "The caller does not have permission"),
         errors.UpstreamAuthError, 502),
        (401, error_body(401, "UNAUTHENTICATED", "bad credentials"), errors.UpstreamAuthError, 502),
        (400, error_body(400, "INVALID_ARGUMENT", "* contents: must not be empty"),
         errors.UpstreamBadRequestError, 400),
        (400, error_body(400, "FAILED_PRECONDITION", "User location is not supported."),
         errors.UpstreamError, 502),
        (404, error_body(404, "NOT_FOUND", "models/x is not found"), errors.UpstreamError, 502),
        (429, error_body(429, "RESOURCE_EXHAUSTED", "quota"), errors.UpstreamRateLimitError, 429),
        (500, error_body(500, "INTERNAL", "oops"), errors.UpstreamError, 502),
        (503, error_body(503, "UNAVAILABLE", "overloaded"), errors.UpstreamUnavailableError, 503),
        (504, error_body(504, "DEADLINE_EXCEEDED", "slow"), errors.UpstreamTimeoutError, 504),
        (502, b"<html>Bad gateway</html>", errors.UpstreamError, 502),
    ],
)  # fmt: skip
def test_error_statuses(status: int, body: bytes, expected_cls: type, expected_status: int) -> None:
    err = map_gemini_error(DEP, status, body, {})
    assert type(err) is expected_cls
    assert err.status == expected_status


def test_client_errors_keep_googles_message_and_never_the_key() -> None:
    body = error_body(400, "INVALID_ARGUMENT", f"* bad field near key={KEY}")
    err = map_gemini_error(DEP, 400, body, {})
    assert "bad field" in err.message
    assert KEY not in json.dumps(err.to_dict())


def test_a_rejected_key_blames_the_configuration_not_the_client() -> None:
    err = map_gemini_error(DEP, 400, error_body(400, "INVALID_ARGUMENT", KEY, KEY_INVALID), {})
    assert err.code == "upstream_authentication_failed"
    assert "API_KEY_INVALID" in err.message
    assert "configuration" in err.message
    assert KEY not in err.message


def retry_info(delay: object) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


@pytest.mark.parametrize(
    ("delay", "headers", "expected"),
    [
        ("7s", {}, "7"),
        ("0.2s", {}, "1"),
        ("12.5s", {}, "13"),
        ({"seconds": "3", "nanos": 500000000}, {}, "4"),
        ("7s", {"retry-after": "30"}, "30"),  # a real header wins
        ("soon", {}, "1"),
        (None, {}, "1"),
    ],
)
def test_retry_info_becomes_retry_after(
    delay: object, headers: dict[str, str], expected: str
) -> None:
    details = [] if delay is None else [retry_info(delay)]
    body = error_body(429, "RESOURCE_EXHAUSTED", "quota", *details)
    err = map_gemini_error(DEP, 429, body, headers)
    assert err.headers == {"Retry-After": expected}
