"""Malformed bodies get the provider's JSON error, never a crash (500) of the emulator.

Every value of a valid request, one at a time, is replaced by an ill-typed value.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from .support import ANTHROPIC_HEADERS, GEMINI_HEADERS, OPENAI_HEADERS, Emulator

ODD_VALUES: list[Any] = [None, "x", 1, [], {}, [{}], [None]]
CASES: list[tuple[str, dict[str, str], dict[str, Any]]] = [
    (
        "/v1/chat/completions",
        OPENAI_HEADERS,
        {
            "model": "gpt-4o",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c", "content": "r"},
            ],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "stop": ["a"],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ),
    (
        "/v1/embeddings",
        OPENAI_HEADERS,
        {"model": "text-embedding-3-small", "input": ["a"], "dimensions": 3},
    ),
    (
        "/v1/messages",
        ANTHROPIC_HEADERS,
        {
            "model": "claude-3-haiku-20240307",
            "max_tokens": 5,
            "system": [{"type": "text", "text": "s"}],
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "hi"},
                        {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
                },
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "t", "content": "r"}],
                },
            ],
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "f"},
            "stop_sequences": ["a"],
        },
    ),
    (
        "/v1beta/models/gemini-2.0-flash:generateContent",
        GEMINI_HEADERS,
        {
            "systemInstruction": {"parts": [{"text": "s"}]},
            "contents": [
                {"role": "user", "parts": [{"text": "hi"}]},
                {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]},
            ],
            "generationConfig": {
                "maxOutputTokens": 5,
                "stopSequences": ["a"],
                "responseMimeType": "application/json",
                "responseSchema": {"type": "OBJECT"},
            },
            "tools": [{"functionDeclarations": [{"name": "f", "parameters": {}}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}},
        },
    ),
    (
        "/v1beta/models/text-embedding-004:batchEmbedContents",
        GEMINI_HEADERS,
        {
            "requests": [
                {"model": "models/text-embedding-004", "content": {"parts": [{"text": "a"}]}}
            ]
        },
    ),
]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else []
    )
    for key, child in items:
        yield from _paths(child, (*prefix, key))


def _replace(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copied = copy.deepcopy(body)
    node: Any = copied
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return copied


@pytest.mark.parametrize(("path", "headers", "body"), CASES, ids=[c[0] for c in CASES])
async def test_ill_typed_values_never_crash_the_emulator(
    emulator: Emulator, path: str, headers: dict[str, str], body: dict[str, Any]
) -> None:
    status, _, _ = await emulator.post(path, body, headers)
    assert status == 200
    for location in _paths(body):
        for odd in ODD_VALUES:
            status, answer, resp = await emulator.post(path, _replace(body, location, odd), headers)
            assert status < 500, (location, odd, answer)
            assert resp.headers["Content-Type"].startswith(
                ("application/json", "text/event-stream")
            )
            if status >= 400:
                assert "error" in answer, (location, odd, answer)
