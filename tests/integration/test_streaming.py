"""Streams: no buffering, and a client that goes away cancels the upstream request."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from conftest import GatewayFactory
from harness import SlowSSEUpstream


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
