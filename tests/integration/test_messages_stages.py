"""The Messages API through the shared stages that change a request or its answer, to an
Anthropic deployment (whose request and answer otherwise pass through as they are): content
rules redacting the prompt (the change reaches the upstream, the rest of the client's body does
not change: the signed thinking block, top_k, cache_control) and the answer (JSON and stream),
and the response cache (a Messages answer served again, never to a Chat Completions request)."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import pytest
from test_messages_api import CLAUDE, raw_events

from conftest import EMULATOR_KEY, GatewayFactory
from harness import EmulatorServer, GatewayServer, dep

pytestmark = pytest.mark.integration

EMAIL = "jane.doe@example.com"
RULES = """
security:
  guardrails:
    policies:
      - name: prompts
        rules: [{name: in-emails, detector: email, action: redact, on: input}]
      - name: answers
        rules: [{name: out-emails, detector: email, action: redact, on: output}]
    models: {claude: [prompts], claude-out: [answers]}
"""


def stage_yaml(emu: EmulatorServer, extra: str = "") -> str:
    claude = dep(emu, CLAUDE, provider="anthropic", api_base=emu.url)
    return f"""
router: {{retries: 0}}
models:
  - {{name: claude, deployments: [{claude}]}}
  - {{name: claude-out, deployments: [{claude}]}}
  - {{name: gpt, deployments: [{dep(emu, "gpt-4o-mini")}]}}
{extra}
"""


@pytest.fixture
def gw(emu: EmulatorServer, start_gateway: GatewayFactory) -> GatewayServer:
    return start_gateway(stage_yaml(emu, RULES))


def upstream_bodies(emu: EmulatorServer) -> list[dict[str, Any]]:
    return [r["body"] for r in emu.requests() if r["path"] == "/v1/messages"]


def post(gw: GatewayServer, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{gw.url}/v1/messages", json=body, timeout=30)


def test_redacted_prompt_keeps_the_rest_of_the_native_body(
    gw: GatewayServer, emu: EmulatorServer
) -> None:
    thinking = {"type": "enabled", "budget_tokens": 1024}
    first = {"role": "user", "content": "Think first"}
    answer = post(gw, {"model": "claude", "max_tokens": 2048, "thinking": thinking,
                       "messages": [first]}).json()  # fmt: skip
    assert answer["content"][0]["type"] == "thinking"
    body = {
        "model": "claude",
        "max_tokens": 2048,
        "thinking": thinking,
        "top_k": 3,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            first,
            {"role": "assistant", "content": answer["content"]},
            {"role": "user", "content": f"Write to {EMAIL} please"},
        ],
    }
    resp = post(gw, body)
    assert resp.status_code == 200, resp.text  # the emulator checked the thinking signature
    sent = upstream_bodies(emu)[-1]
    assert EMAIL not in json.dumps(sent)
    assert "[REDACTED:email]" in json.dumps(sent["messages"][-1])
    assert sent["messages"][:2] == body["messages"][:2]  # as the client sent them
    unchanged = {k: v for k, v in body.items() if k not in ("messages", "model")}
    assert {k: v for k, v in sent.items() if k not in ("messages", "model")} == unchanged


def test_redacted_answer_json_and_stream(gw: GatewayServer) -> None:
    body = {
        "model": "claude-out",
        "max_tokens": 2048,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [{"role": "user", "content": f"Mail {EMAIL} now [[words:30]]"}],
    }
    message = post(gw, body).json()
    kinds = [b["type"] for b in message["content"]]
    assert kinds == ["thinking", "text"]
    assert message["content"][0]["signature"]  # Anthropic's blocks kept around the change
    assert EMAIL not in json.dumps(message)  # the thinking is redacted too
    assert "[REDACTED:email]" in message["content"][0]["thinking"]
    assert EMAIL not in message["content"][1]["text"]
    assert "[REDACTED:email]" in message["content"][1]["text"]

    events = raw_events(gw, body)
    text = "".join(
        e["delta"]["text"]
        for e in events
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "text_delta"
    )
    assert EMAIL not in json.dumps(events)
    assert text == message["content"][1]["text"]
    starts = [e["index"] for e in events if e["type"] == "content_block_start"]
    assert starts == [0, 1]
    assert events[-1] == {"type": "message_stop"}
    client = anthropic.Anthropic(base_url=gw.url, api_key="x", max_retries=0)
    with client, client.messages.stream(**body) as stream:  # type: ignore[arg-type]
        final = stream.get_final_message()
    assert final.content[1].type == "text"
    assert final.content[1].text == text


def test_cache_serves_messages_answers_only_to_messages(
    emu: EmulatorServer, start_gateway: GatewayFactory
) -> None:
    gw = start_gateway(stage_yaml(emu, "cache: {enabled: true}"))
    body = {"model": "claude", "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]}
    first, second = post(gw, body), post(gw, body)
    assert second.headers["x-gateway-cache"] == "hit"
    assert second.json() == first.json()
    assert len(upstream_bodies(emu)) == 1
    # The stream of a cached JSON answer: a complete, valid event sequence.
    events = raw_events(gw, body)
    assert [e["type"] for e in events][:2] == ["message_start", "ping"]
    assert events[-1] == {"type": "message_stop"}
    assert len(upstream_bodies(emu)) == 1
    # top_k changes the request: its own entry.
    assert post(gw, {**body, "top_k": 2}).headers["x-gateway-cache"] == "miss"
    # The same prompt through Chat Completions is another API's request.
    chat = {"model": "claude", "max_tokens": 64, "messages": body["messages"]}
    resp = httpx.post(f"{gw.url}/v1/chat/completions", json=chat, timeout=30)
    assert resp.headers["x-gateway-cache"] == "miss"
    assert "_native" not in resp.json()
    assert resp.json()["object"] == "chat.completion"


def test_openai_deployment_key_for_anthropic_only_config(gw: GatewayServer) -> None:
    """The emulator key never reaches a client, in JSON or in a stream."""
    body = {"model": "gpt", "max_tokens": 16, "messages": [{"role": "user", "content": "Hi"}]}
    assert EMULATOR_KEY not in post(gw, body).text
    assert EMULATOR_KEY not in json.dumps(raw_events(gw, body))
