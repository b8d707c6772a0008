"""/openapi.json describes what the endpoints really accept and return: real requests and
responses are validated against the served document's schemas."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec

from harness import GatewayServer

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {
                "type": "object",
                "properties": {"q": {"type": "string"}},
                "required": ["q"],
            },
        },
    }
]


@pytest.fixture
def spec(gateway: GatewayServer) -> dict[str, Any]:
    document = httpx.get(f"{gateway.url}/openapi.json").json()
    validate_spec(document)
    return document  # type: ignore[no-any-return]


def check(spec: dict[str, Any], name: str, instance: Any) -> None:
    schema = {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
    errors = sorted(Draft202012Validator(schema).iter_errors(instance), key=str)
    assert not errors, [e.message for e in errors]


def test_requests_and_responses_match_the_document(
    spec: dict[str, Any], gateway: GatewayServer
) -> None:
    requests = [
        {"model": "fast", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20},
        {
            "model": "fast",
            "messages": [{"role": "user", "content": "find x"}],
            "tools": TOOLS,
            "tool_choice": "required",
        },
    ]
    with httpx.Client(base_url=gateway.url) as c:
        for body in requests:
            check(spec, "ChatCompletionRequest", body)
            resp = c.post("/v1/chat/completions", json=body)
            assert resp.status_code == 200
            check(spec, "ChatCompletion", resp.json())
        stream_body = {**requests[1], "stream": True, "stream_options": {"include_usage": True}}
        check(spec, "ChatCompletionRequest", stream_body)
        with c.stream("POST", "/v1/chat/completions", json=stream_body) as resp:
            events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        for event in events[:-1]:
            check(spec, "ChatCompletionChunk", json.loads(event))
        emb = {"model": "embed", "input": ["a", "b"]}
        check(spec, "EmbeddingsRequest", emb)
        check(spec, "EmbeddingsResponse", c.post("/v1/embeddings", json=emb).json())
        check(spec, "ModelList", c.get("/v1/models").json())
        check(spec, "ModelCard", c.get("/v1/models/fast").json())
        for bad in (c.post("/v1/chat/completions", json={"model": "fast"}), c.get("/v1/models/x")):
            check(spec, "ErrorResponse", bad.json())


def test_document_rejects_what_the_gateway_rejects(spec: dict[str, Any]) -> None:
    schema = {
        "$ref": "#/components/schemas/ChatCompletionRequest",
        "components": spec["components"],
    }
    validator = Draft202012Validator(schema)
    assert not validator.is_valid({"model": "fast"})
    assert not validator.is_valid({"model": "fast", "messages": [], "stream": True})
    assert not validator.is_valid(
        {"model": "fast", "messages": [{"role": "user", "content": "x"}], "temperature": 5}
    )
