"""Every request that reaches the stage chain leaves one usage record, and its status is the one
the client got: for each class of error (a content rule on the prompt or on the answer, a model
the key may not use, a rate limit, an unknown model, an upstream failure, a client that left) and
for streams (an error before the first chunk is an HTTP error; after it, a 200 with an error
event)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from conftest import GatewayFactory, emulator_yaml
from harness import EmulatorServer, GatewayServer

pytestmark = pytest.mark.integration

MASTER = "sk-master-recorded-3f1d"
ADMIN = {"Authorization": f"Bearer {MASTER}"}
EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"


@pytest.fixture
def gw(emu: EmulatorServer, start_gateway: GatewayFactory) -> GatewayServer:
    extra = f"""
  - name: guarded
    provider: openai
    model: gpt-4o-mini
    api_base: {emu.url}/v1
    api_key: sk-emulator
security:
  rate_limits: {{user: {{rps: 100000, burst: 100000}}}}
  guardrails:
    policies:
      - name: rules
        rules:
          - {{name: no-emails-out, detector: email, action: block, on: output}}
          - {{name: no-cards-in, detector: card, action: block, on: input}}
    models:
      guarded: [rules]
"""
    return start_gateway(emulator_yaml(emu, extra), master_key=MASTER)


def post(
    gw: GatewayServer, body: dict[str, Any], headers: dict[str, str] = ADMIN
) -> httpx.Response:
    return httpx.post(f"{gw.url}/v1/chat/completions", json=body, headers=headers, timeout=10)


def chat(text: str, model: str = "guarded", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def record_of(gw: GatewayServer, request_id: str) -> dict[str, Any]:
    """The usage record of one request (the writer flushes every half second)."""
    deadline = time.monotonic() + 10
    while True:
        found = httpx.get(
            f"{gw.url}/ai/analytics/requests",
            params={"start": "1h", "request_id": request_id},
            headers=ADMIN,
            timeout=10,
        )
        assert found.status_code == 200, found.text
        rows = found.json()["data"]
        if rows or time.monotonic() > deadline:
            assert len(rows) == 1, rows
            return dict(rows[0])
        time.sleep(0.1)


def recorded_as_answered(gw: GatewayServer, resp: httpx.Response) -> dict[str, Any]:
    row = record_of(gw, resp.headers["x-gateway-request-id"])
    assert row["status"] == resp.status_code
    if resp.status_code >= 400:
        assert row["error_type"] == resp.json()["error"]["type"]
    return row


def test_an_answer_blocked_by_an_output_rule_is_recorded_as_the_400_the_client_got(
    gw: GatewayServer,
) -> None:
    resp = post(gw, chat(f"write to {EMAIL}"))
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "content_filter"
    row = recorded_as_answered(gw, resp)
    # The provider generated it: its tokens and cost are kept.
    assert row["completion_tokens"] > 0
    assert row["cost_usd"] is not None


def test_refusals_before_routing_are_recorded_with_their_status(gw: GatewayServer) -> None:
    blocked = post(gw, chat(f"my card is {CARD}"))
    assert blocked.status_code == 400
    assert recorded_as_answered(gw, blocked)["deployment"] == ""  # never routed
    unknown = post(gw, chat("hello", model="no-such-model"))
    assert unknown.status_code == 404
    recorded_as_answered(gw, unknown)
    key = httpx.post(
        f"{gw.url}/admin/keys", json={"user": "ulla", "models": ["fast"], "tpm": 1}, headers=ADMIN
    ).json()
    caller = {"Authorization": f"Bearer {key['key']}"}
    refused = post(gw, chat("hello", model="guarded"), caller)
    assert refused.status_code == 403
    assert recorded_as_answered(gw, refused)["user"] == "ulla"
    assert post(gw, chat("hello", model="fast"), caller).status_code == 200
    limited = post(gw, chat("hello", model="fast"), caller)  # over its 1 token per minute
    assert limited.status_code == 429
    recorded_as_answered(gw, limited)


def test_upstream_failures_are_recorded_with_the_status_the_client_got(
    gw: GatewayServer, emu: EmulatorServer
) -> None:
    emu.add_faults({"kind": "status", "status": 500, "model": "gpt-4o-mini", "count": 1})
    failed = post(gw, chat("hello", model="fast"))
    assert failed.status_code == 502
    assert recorded_as_answered(gw, failed)["deployment"] != ""  # its last attempt
    emu.add_faults({"kind": "status", "status": 500, "model": "gpt-4o-mini", "count": 1})
    streamed = post(gw, chat("hello", model="fast", stream=True))
    assert streamed.status_code == 502  # before the first chunk: a plain HTTP error
    assert recorded_as_answered(gw, streamed)["stream"] is True


def test_a_stream_that_fails_after_its_first_chunk_is_a_200_with_the_error_recorded(
    gw: GatewayServer, emu: EmulatorServer
) -> None:
    emu.add_faults({"kind": "error_event", "after_chunks": 2, "model": "gpt-4o-mini", "count": 1})
    resp = post(gw, chat("tell me more [[words:40]]", model="fast", stream=True))
    assert resp.status_code == 200
    events = [line for line in resp.text.splitlines() if line.startswith("data: ")]
    assert '"error"' in events[-1]
    row = recorded_as_answered(gw, resp)
    assert row["error_type"] is not None  # the client got 200 and an error event


def test_a_streamed_answer_blocked_mid_way_is_a_200_with_the_block_recorded(
    gw: GatewayServer,
) -> None:
    resp = post(gw, chat(f"write to {EMAIL}", stream=True))
    assert resp.status_code == 200
    events = [line for line in resp.text.splitlines() if line.startswith("data: ")]
    assert "content_filter" in events[-1]
    assert EMAIL not in resp.text
    row = recorded_as_answered(gw, resp)
    assert row["error_type"] == "invalid_request_error"
