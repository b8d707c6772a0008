"""Anthropic upstream failures through the gateway, over real sockets: each gets a truthful
status and an OpenAI-style error; mid-stream failures end the stream with an error event; and
the first token is relayed while the upstream is still generating."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from test_anthropic_emulator import CLAUDE, MASTER, anthropic_yaml, messages_calls, model_stats

from ai_gateway.emulator import EmulatorSettings
from conftest import EMULATOR_KEY, GatewayFactory
from harness import EmulatorServer, GatewayServer

CHAT: dict[str, Any] = {"model": "claude", "messages": [{"role": "user", "content": "hi there"}]}
AUTH = {"Authorization": f"Bearer {MASTER}"}


@pytest.fixture
def gw(
    emu: EmulatorServer, start_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> GatewayServer:
    monkeypatch.setenv("AI_GATEWAY_MASTER_KEY", MASTER)
    return start_gateway(anthropic_yaml(emu))


@pytest.fixture
def http(gw: GatewayServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw.url, headers=AUTH, timeout=30) as client:
        yield client


def error_of(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert EMULATOR_KEY not in resp.text
    assert MASTER not in resp.text
    return body["error"]  # type: ignore[no-any-return]


def sse_payloads(resp: httpx.Response) -> list[Any]:
    return [
        line[6:] if line == "data: [DONE]" else json.loads(line[6:])
        for line in resp.iter_lines()
        if line.startswith("data: ")
    ]


def fault(emu: EmulatorServer, **spec: Any) -> None:
    emu.add_faults({"provider": "anthropic", **spec})


def test_rate_limit_is_429_with_retry_after(emu: EmulatorServer, http: httpx.Client) -> None:
    fault(emu, kind="status", status=429, retry_after=3)
    resp = http.post("/v1/chat/completions", json=CHAT)
    err = error_of(resp, 429)
    assert resp.headers["retry-after"] == "3"
    assert err["type"] == "rate_limit_error"
    assert "rate limit" in err["message"]


def test_overloaded_529_is_503(emu: EmulatorServer, gw: GatewayServer) -> None:
    fault(emu, kind="status", status=529)
    with (
        openai.OpenAI(base_url=f"{gw.url}/v1", api_key=MASTER, max_retries=0) as sdk,
        pytest.raises(openai.InternalServerError) as info,
    ):
        sdk.chat.completions.create(**CHAT)
    assert info.value.status_code == 503
    assert "Overloaded" in info.value.message


def test_rejected_provider_key_is_502_without_any_key(
    emu: EmulatorServer, http: httpx.Client
) -> None:
    fault(emu, kind="status", status=401)
    err = error_of(http.post("/v1/chat/completions", json=CHAT), 502)
    assert err["code"] == "upstream_authentication_failed"
    assert "configuration" in err["message"]


def test_upstream_400_is_the_clients_400(emu: EmulatorServer, http: httpx.Client) -> None:
    fault(emu, kind="status", status=400)
    err = error_of(http.post("/v1/chat/completions", json=CHAT), 400)
    assert "emulated fault" in err["message"]


def test_stream_failing_before_its_first_event_is_a_plain_http_error(
    emu: EmulatorServer, http: httpx.Client
) -> None:
    fault(emu, kind="status", status=529)
    with http.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as resp:
        resp.read()
    error_of(resp, 503)


@pytest.mark.parametrize(
    ("kind", "code"),
    [("error_event", "upstream_unavailable"), ("drop_mid_stream", "upstream_connection_error")],
)
def test_mid_stream_failure_ends_with_an_error_event(
    emu: EmulatorServer, http: httpx.Client, kind: str, code: str
) -> None:
    fault(emu, kind=kind, after_chunks=4)
    with http.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as resp:
        assert resp.status_code == 200
        payloads = sse_payloads(resp)
    assert "[DONE]" not in payloads
    *chunks, last = payloads
    assert chunks, "some chunks arrived before the failure"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert last["error"]["code"] == code
    assert "deployment 'claude/0'" in last["error"]["message"]
    assert EMULATOR_KEY not in json.dumps(last)


def test_sdk_sees_a_mid_stream_error(emu: EmulatorServer, gw: GatewayServer) -> None:
    # After the first text deltas: earlier failures are failed over as plain HTTP errors.
    fault(emu, kind="error_event", after_chunks=6)
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=MASTER, max_retries=0) as sdk:
        stream = sdk.chat.completions.create(**CHAT, stream=True)
        with pytest.raises(openai.APIError, match="Overloaded"):
            list(stream)


def test_unsupported_requests_never_reach_the_upstream(
    emu: EmulatorServer, http: httpx.Client
) -> None:
    err = error_of(http.post("/v1/chat/completions", json={**CHAT, "n": 2}), 400)
    assert err["param"] == "n"
    err = error_of(http.post("/v1/chat/completions", json={**CHAT, "temperature": 1.7}), 400)
    assert err["param"] == "temperature"
    assert "0 to 1" in err["message"]
    bad_call = {
        "role": "assistant",
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{no"}}
        ],
    }
    body = {**CHAT, "messages": [*CHAT["messages"], bad_call]}
    err = error_of(http.post("/v1/chat/completions", json=body), 400)
    assert err["param"] == "messages[1].tool_calls[0].function.arguments"
    err = error_of(http.post("/v1/embeddings", json={"model": "claude", "input": "x"}), 400)
    assert "no embeddings API" in err["message"]
    assert messages_calls(emu) == []


def test_first_token_is_relayed_while_the_upstream_is_still_generating(
    start_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = EmulatorServer(EmulatorSettings(chunk_delay_s=0.05))
    try:
        monkeypatch.setenv("AI_GATEWAY_MASTER_KEY", MASTER)
        gw = start_gateway(anthropic_yaml(slow))
        body = {**CHAT, "stream": True, "messages": [{"role": "user", "content": "a long one"}]}
        with (
            httpx.Client(base_url=gw.url, headers=AUTH, timeout=30) as client,
            client.stream("POST", "/v1/chat/completions", json=body) as resp,
        ):
            lines = resp.iter_lines()
            for line in lines:
                chunk = json.loads(line[6:]) if line.startswith("data: {") else None
                if chunk and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    break
            # The upstream has not finished its stream when the first token reaches us.
            assert model_stats(slow, CLAUDE)["succeeded"] == 0
            assert "data: [DONE]" in list(lines)
        assert model_stats(slow, CLAUDE)["succeeded"] == 1
    finally:
        slow.stop()
