"""Stream keep-alive: while the upstream is silent, the client gets SSE comment lines at the
configured interval (so proxies with an idle timeout do not cut the stream), the official SDKs
still parse the stream, and the providers' own keep-alive events (Anthropic `ping`, SSE
comments) pass unnoticed. A stream whose upstream is not silent gets none."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import httpx
import openai
import pytest

from ai_gateway.emulator.app import EmulatorSettings
from ai_gateway.serving import uvicorn_options
from ai_gateway.settings import load_config
from conftest import GatewayFactory
from harness import EMULATOR_KEY, EmulatorServer, GatewayServer

pytestmark = pytest.mark.integration

INTERVAL_S = 0.3
PAUSE_S = 1.4


def gateway_yaml(emu: EmulatorServer, interval: float = INTERVAL_S) -> str:
    return f"""
streaming: {{keepalive_interval_s: {interval}}}
router: {{retries: 0}}
models:
  - {{name: gpt, provider: openai, model: gpt-4o-mini, api_base: '{emu.url}/v1',
     api_key: {EMULATOR_KEY}}}
  - {{name: claude, provider: anthropic, model: claude-3-5-haiku-20241022,
     api_base: '{emu.url}', api_key: {EMULATOR_KEY}}}
"""


def raw_stream(gw: GatewayServer, model: str) -> list[tuple[float, str]]:
    """Every non-empty line of the SSE response, with when it arrived."""
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    lines: list[tuple[float, str]] = []
    start = time.monotonic()
    with httpx.stream("POST", f"{gw.url}/v1/chat/completions", json=body, timeout=30) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line:
                lines.append((time.monotonic() - start, line))
    return lines


def pause(emu: EmulatorServer, provider: str, ping_s: float = 0.0) -> None:
    emu.add_faults(
        {"kind": "pause", "provider": provider, "after_chunks": 2, "seconds": PAUSE_S}
        | ({"ping_s": ping_s} if ping_s else {})
    )


@pytest.mark.parametrize(
    ("model", "provider", "where"),
    [
        ("gpt", "openai", "mid-stream"),
        ("claude", "anthropic", "mid-stream"),
        ("gpt", "openai", "before the first token"),
    ],
)
def test_a_silent_upstream_gets_keepalive_comments(
    emu: EmulatorServer, start_gateway: GatewayFactory, model: str, provider: str, where: str
) -> None:
    gw = start_gateway(gateway_yaml(emu))
    if where == "mid-stream":
        # The provider's own keep-alives (Anthropic `ping` events, SSE comments) during the
        # pause reach the gateway, not the client: they are not events of the answer.
        pause(emu, provider, ping_s=0.1)
    else:  # a long time to the first token (reasoning): nothing at all comes from upstream
        emu.add_faults({"kind": "delay", "provider": provider, "seconds": PAUSE_S})
    lines = raw_stream(gw, model)
    comments = [(t, line) for t, line in lines if line.startswith(":")]
    assert {line for _, line in comments} == {": keep-alive"}
    # One per interval of silence (the pause is PAUSE_S long): not more, not fewer.
    assert int(PAUSE_S / INTERVAL_S) - 1 <= len(comments) <= int(PAUSE_S / INTERVAL_S) + 1
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(comments)]
    assert all(INTERVAL_S * 0.6 < gap < INTERVAL_S * 2 for gap in gaps), gaps
    data = [line for _, line in lines if line.startswith("data: ")]
    assert data[-1] == "data: [DONE]"
    # The comments came during the silence, in one run: no event of the answer among them.
    kinds = "".join("c" if line.startswith(":") else "d" for _, line in lines)
    assert kinds.count("c") == len(kinds.strip("d")), kinds
    if where != "mid-stream":
        assert kinds.startswith("c")


def test_the_openai_sdk_parses_a_stream_with_keepalives(
    emu: EmulatorServer, start_gateway: GatewayFactory
) -> None:
    gw = start_gateway(gateway_yaml(emu))
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0) as client:
        expected = client.chat.completions.create(
            model="gpt", messages=[{"role": "user", "content": "hi"}]
        )
        pause(emu, "openai", ping_s=0.2)
        started = time.monotonic()
        stream = client.chat.completions.create(
            model="gpt", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert time.monotonic() - started >= PAUSE_S  # it went through the pause
    assert text == expected.choices[0].message.content
    assert text


def test_no_keepalive_while_the_upstream_talks_or_when_off(
    emu: EmulatorServer, start_gateway: GatewayFactory
) -> None:
    gw = start_gateway(gateway_yaml(emu))
    lines = raw_stream(gw, "gpt")  # no pause: chunks keep coming
    assert not [line for _, line in lines if line.startswith(":")]
    off = start_gateway(gateway_yaml(emu, interval=0))
    pause(emu, "openai")
    lines = raw_stream(off, "gpt")
    assert not [line for _, line in lines if line.startswith(":")]
    assert lines[-1][1] == "data: [DONE]"


def test_websocket_pings_follow_the_interval(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("streaming: {keepalive_interval_s: 7}\n")
    assert uvicorn_options(load_config(path))["ws_ping_interval"] == 7
    path.write_text("streaming: {keepalive_interval_s: 0}\n")
    assert uvicorn_options(load_config(path))["ws_ping_interval"] is None
    path.write_text("gateway: {drain_timeout_s: 12}\n")
    options = uvicorn_options(load_config(path))
    assert options["ws_ping_interval"] == 15  # the default interval
    # uvicorn's own wait outlasts the drain, so that the drain's deadline ends streams first.
    assert options["timeout_graceful_shutdown"] > 12


def test_an_error_after_a_keepalive_is_an_error_event(start_gateway: GatewayFactory) -> None:
    """Once a keep-alive has started the response (200), an upstream error that comes later
    is the stream's last event, not an HTTP status; one that comes sooner stays an HTTP
    error."""
    slow = EmulatorServer(EmulatorSettings(latency_s=1.0))  # every answer waits 1 s
    try:
        gw = start_gateway(gateway_yaml(slow))
        slow.add_faults({"kind": "status", "status": 400})
        lines = raw_stream(gw, "gpt")
        assert lines[0][1] == ": keep-alive"
        last = json.loads(lines[-1][1].removeprefix("data: "))
        assert last["error"]["type"] == "invalid_request_error"
        assert all(line != "data: [DONE]" for _, line in lines)

        patient = start_gateway(gateway_yaml(slow, interval=5))
        slow.add_faults({"kind": "status", "status": 400})
        body = {"model": "gpt", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        resp = httpx.post(f"{patient.url}/v1/chat/completions", json=body, timeout=30)
        assert resp.status_code == 400
        assert resp.json()["error"]["type"] == "invalid_request_error"
    finally:
        slow.stop()
