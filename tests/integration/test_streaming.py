"""Streams: no buffering, and a client that goes away cancels the upstream request."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from conftest import GatewayFactory
from harness import EmulatorServer, SlowSSEUpstream, chat, dep


@pytest.fixture
def slow() -> SlowSSEUpstream:
    upstream = SlowSSEUpstream(chunks=30, interval=0.2)
    yield upstream
    upstream.stop()


def slow_yaml(upstream: SlowSSEUpstream) -> str:
    return (
        "models:\n  - {name: slow, provider: openai, model: slow, "
        f"api_base: '{upstream.base}', api_key: sk-slow-123456}}\n"
    )


BODY = {"model": "slow", "messages": [{"role": "user", "content": "go"}], "stream": True}


def test_first_chunk_is_relayed_without_waiting_for_more(
    start_gateway: GatewayFactory, slow: SlowSSEUpstream
) -> None:
    gw = start_gateway(slow_yaml(slow))
    with httpx.Client(base_url=gw.url, timeout=30) as c:
        started = time.monotonic()
        with c.stream("POST", "/v1/chat/completions", json=BODY) as resp:
            for line in resp.iter_lines():
                if line.startswith("data: "):
                    first = json.loads(line[6:])
                    break
        elapsed = time.monotonic() - started
    assert first["choices"][0]["delta"]["content"] == "w0 "
    # The upstream waits 0.2s between chunks; a buffering relay would hold the first one back.
    assert elapsed < 0.19 * 3


def test_client_disconnect_cancels_the_upstream_stream(
    start_gateway: GatewayFactory, slow: SlowSSEUpstream
) -> None:
    gw = start_gateway(slow_yaml(slow))
    with (
        httpx.Client(base_url=gw.url, timeout=30) as c,
        c.stream("POST", "/v1/chat/completions", json=BODY) as resp,
    ):
        for line in resp.iter_lines():
            if line.startswith("data: "):
                break
    # leaving the block closed our connection after the first chunk
    # 30 chunks x 0.2s = 6s if the gateway kept reading; it must let go at once.
    assert slow.closed.wait(3), "the gateway kept the upstream stream open"


def test_client_disconnect_cancels_a_non_streaming_upstream_call(
    start_gateway: GatewayFactory, slow: SlowSSEUpstream
) -> None:
    gw = start_gateway(slow_yaml(slow))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{gw.url}/v1/chat/completions", json={**BODY, "stream": False}, timeout=0.5)
    assert slow.closed.wait(3), "the gateway kept waiting on the upstream after the client left"
    metrics = httpx.get(f"{gw.url}/metrics").text
    assert "ai_gateway_in_flight_requests 1.0" in metrics


def test_hedged_loser_is_cancelled_upstream(
    start_gateway: GatewayFactory, emulator: EmulatorServer
) -> None:
    stuck = SlowSSEUpstream(chunks=1, interval=0.01, first_delay=10)
    try:
        gw = start_gateway(
            f"""
router: {{hedge: {{pair: {{after_s: 0.2}}}}}}
models:
  - name: pair
    deployments:
      - {{provider: openai, model: stuck, api_base: "{stuck.base}", api_key: sk-x-12345678,
         weight: 1000}}
      - {dep(emulator, "gpt-4o-mini", weight=0.001)}
"""
        )
        resp = chat(gw, "pair")
        assert resp.status_code == 200
        assert resp.headers["x-gateway-hedged"] == "true"
        assert stuck.closed.wait(3), "the slower request was left running upstream"
    finally:
        stuck.stop()


def test_fanout_first_cancels_the_others_upstream(
    start_gateway: GatewayFactory, emulator: EmulatorServer
) -> None:
    stuck = SlowSSEUpstream(chunks=1, interval=0.01, first_delay=10)
    try:
        gw = start_gateway(
            f"""
models:
  - {{name: stuck, provider: openai, model: stuck, api_base: "{stuck.base}",
      api_key: sk-x-12345678}}
  - name: quick
    deployments: [{dep(emulator, "gpt-4o-mini")}]
"""
        )
        resp = chat(gw, "quick", models=["stuck", "quick"], fanout="first")
        assert resp.status_code == 200
        assert resp.headers["x-gateway-model"] == "quick"
        assert stuck.closed.wait(3), "the losing model's request was left running upstream"
    finally:
        stuck.stop()
