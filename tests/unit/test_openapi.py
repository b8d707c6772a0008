from __future__ import annotations

from openapi_spec_validator import validate

from ai_gateway.api.openapi import build_openapi


def test_document_is_valid_openapi_3_1() -> None:
    validate(build_openapi())


def test_every_route_is_documented_under_both_prefixes() -> None:
    paths = build_openapi()["paths"]
    for prefix in ("/ai", "/v1"):
        for suffix in ("/chat/completions", "/embeddings", "/models", "/models/{model_id}"):
            assert prefix + suffix in paths
    for extra in ("/health", "/health/ready", "/metrics"):
        assert extra in paths


def test_every_prompt_route_of_the_route_table_is_documented() -> None:
    paths = build_openapi()["paths"]
    for prefix in ("/ai", "/v1"):
        documented = {
            (path.removeprefix(prefix), method.upper())
            for path, ops in paths.items()
            if path.startswith(f"{prefix}/prompts")
            for method in ops
        }
        assert documented == {
            ("/prompts", "POST"),
            ("/prompts", "GET"),
            ("/prompts/{prompt_id}", "GET"),
            ("/prompts/{prompt_id}/versions", "POST"),
            ("/prompts/{prompt_id}/versions/{version}", "GET"),
            ("/prompts/{prompt_id}/labels/{label}", "PUT"),
            ("/prompts/{prompt_id}/render", "POST"),
        }


def test_request_schema_names_the_real_fields() -> None:
    schemas = build_openapi()["components"]["schemas"]
    chat = schemas["ChatCompletionRequest"]
    # Both required, unless the request names a prompt template (docs/prompts.md).
    assert chat["if"] == {"not": {"required": ["prompt"]}}
    assert set(chat["then"]["required"]) == {"model", "messages"}
    assert "prompt" in chat["properties"]
    assert "stream_options" in chat["properties"]
    assert chat["additionalProperties"] is True
