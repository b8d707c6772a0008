"""POST /v1/tokens/count over a real socket."""

from __future__ import annotations

import httpx

from harness import GatewayServer


def count(gateway: GatewayServer, body: dict) -> httpx.Response:
    return httpx.post(f"{gateway.url}/v1/tokens/count", json=body)


def test_exact_count_for_an_openai_model(gateway: GatewayServer) -> None:
    resp = count(gateway, {"model": "fast", "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 200
    assert resp.json() == {
        "object": "token_count",
        "model": "fast",
        "provider": "openai",
        "upstream_model": "gpt-4o-mini",
        "tokens": 8,
        "exact": True,
        "method": "o200k_base",
    }
    text = count(gateway, {"model": "fast", "input": ["Hello, world! How are you?", "hi"]})
    assert text.json()["tokens"] == 8 + 1


def test_estimate_for_models_without_a_public_tokenizer(gateway: GatewayServer) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    resp = count(
        gateway,
        {"model": "fast", "messages": [{"role": "user", "content": "hi"}], "tools": tools},
    )
    assert resp.json()["exact"] is False
    assert resp.json()["tokens"] > 8


def test_errors(gateway: GatewayServer) -> None:
    both = count(
        gateway, {"model": "fast", "input": "x", "messages": [{"role": "user", "content": "x"}]}
    )
    assert both.status_code == 400
    assert "either 'messages'" in both.json()["error"]["message"]
    assert count(gateway, {"model": "nope", "input": "x"}).status_code == 404
