"""Gemini upstream failures through the gateway: truthful statuses, no secrets, no silent ends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from ai_gateway.emulator.app import EmulatorSettings
from conftest import PROVIDER_ENV, GatewayFactory
from harness import EmulatorServer, GatewayServer, config_from_yaml

GEMINI_KEY = "gm-emulator-provider-key-0001"
MODEL = "gemini-2.0-flash"
CHAT = {"model": "gem", "messages": [{"role": "user", "content": "hi there"}]}


def shared_gateway(
    tmp_path_factory: pytest.TempPathFactory, yaml_text: str
) -> Iterator[GatewayServer]:
    """One gateway for the whole module (starting one per test would dominate the run time)."""
    with pytest.MonkeyPatch.context() as env:
        for name in PROVIDER_ENV:
            env.delenv(name, raising=False)
        server = GatewayServer(config_from_yaml(tmp_path_factory.mktemp("gw"), yaml_text))
    yield server
    server.stop()


def gemini_yaml(base: str, key: str = GEMINI_KEY) -> str:
    return (
        "router: {retries: 0}\n"  # error tests see each upstream failure as it is
        f"models:\n  - {{name: gem, provider: gemini, model: {MODEL}, "
        f'api_base: "{base}", api_key: {key}}}\n'
    )


@pytest.fixture(scope="module")
def module_gateway(
    emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    yield from shared_gateway(tmp_path_factory, gemini_yaml(emulator.url))


@pytest.fixture
def gateway(module_gateway: GatewayServer, emu: EmulatorServer) -> GatewayServer:
    return module_gateway


@pytest.fixture
def http(gateway: GatewayServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=30) as c:
        yield c


def error_of(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert GEMINI_KEY not in resp.text
    body = resp.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]  # type: ignore[no-any-return]


def sse_events(resp: httpx.Response) -> list[Any]:
    return [
        json.loads(line[6:]) if line != "data: [DONE]" else "[DONE]"
        for line in resp.iter_lines()
        if line.startswith("data: ")
    ]


def test_429_keeps_google_retry_delay_as_retry_after(
    http: httpx.Client, emu: EmulatorServer
) -> None:
    # The emulator sends the wait only as a google.rpc.RetryInfo detail ("7s"), no header.
    emu.add_faults({"kind": "status", "status": 429, "retry_after": 7, "provider": "gemini"})
    resp = http.post("/v1/chat/completions", json=CHAT)
    err = error_of(resp, 429)
    assert err["code"] == "upstream_rate_limited"
    assert resp.headers["retry-after"] == "7"


@pytest.mark.parametrize(
    ("status", "expected", "code"),
    [(500, 502, "upstream_error"), (503, 503, "upstream_unavailable"), (403, 502, None)],
)
def test_server_failures_map_to_truthful_statuses(
    http: httpx.Client, emu: EmulatorServer, status: int, expected: int, code: str | None
) -> None:
    emu.add_faults({"kind": "status", "status": status, "provider": "gemini"})
    err = error_of(http.post("/v1/chat/completions", json=CHAT), expected)
    assert err["code"] == (code or "upstream_authentication_failed")


def test_rejected_key_is_the_gateways_fault_and_never_shown(
    start_gateway: GatewayFactory,
) -> None:
    strict = EmulatorServer(EmulatorSettings(api_keys=frozenset({"the-right-key"})))
    try:
        gateway = start_gateway(gemini_yaml(strict.url))
        with httpx.Client(base_url=gateway.url, timeout=30) as c:
            chat = c.post("/v1/chat/completions", json=CHAT)
            stream = c.post("/v1/chat/completions", json={**CHAT, "stream": True})
        (sent, _) = strict.requests()
        assert sent["headers"]["x-goog-api-key"] == GEMINI_KEY  # Google said 400 API_KEY_INVALID
    finally:
        strict.stop()
    for resp in (chat, stream):
        err = error_of(resp, 502)
        assert err["code"] == "upstream_authentication_failed"
        assert "configuration" in err["message"]


def test_mid_stream_failure_ends_with_an_error_event(
    http: httpx.Client, emu: EmulatorServer
) -> None:
    emu.add_faults({"kind": "error_event", "after_chunks": 3, "provider": "gemini"})
    with http.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as resp:
        assert resp.status_code == 200
        events = sse_events(resp)
    assert [e["choices"][0]["delta"].get("content") for e in events[:3]] == [
        "Emulated ",
        "reply ",
        "to: ",
    ]
    assert "[DONE]" not in events
    error = events[-1]["error"]
    assert error["code"] == "upstream_unavailable"
    assert "overloaded" in error["message"]
    assert GEMINI_KEY not in json.dumps(events)


def test_dropped_stream_is_an_error_not_a_short_answer(
    http: httpx.Client, emu: EmulatorServer
) -> None:
    emu.add_faults({"kind": "drop_mid_stream", "after_chunks": 2, "provider": "gemini"})
    with http.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as resp:
        events = sse_events(resp)
    assert "[DONE]" not in events
    assert events[-1]["error"]["type"] == "upstream_error"


@pytest.mark.parametrize("stream", [False, True])
def test_prompt_safety_block_is_a_400_content_filter(
    http: httpx.Client, emu: EmulatorServer, stream: bool
) -> None:
    emu.add_faults({"kind": "safety_block", "stage": "prompt", "provider": "gemini"})
    err = error_of(http.post("/v1/chat/completions", json={**CHAT, "stream": stream}), 400)
    assert err["code"] == "content_filter"
    assert "SAFETY" in err["message"]
    assert "HARM_CATEGORY_HARASSMENT" in err["message"]


def test_response_safety_block_finishes_with_content_filter(
    gateway: GatewayServer, emu: EmulatorServer
) -> None:
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0) as client:
        emu.add_faults({"kind": "safety_block", "stage": "response", "provider": "gemini"})
        result = client.chat.completions.create(model="gem", messages=CHAT["messages"])  # type: ignore[arg-type]
        assert result.choices[0].finish_reason == "content_filter"
        assert (result.choices[0].message.content or "").startswith("Emulated")
        emu.add_faults({"kind": "safety_block", "stage": "response", "provider": "gemini"})
        chunks = list(
            client.chat.completions.create(
                model="gem",
                messages=CHAT["messages"],  # type: ignore[arg-type]
                stream=True,
            )
        )
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason]
    assert finishes == ["content_filter"]


def test_unknown_configured_model_is_an_operator_error(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    gateway = start_gateway(gemini_yaml(emu.url).replace(MODEL, "not-a-gemini-model"))
    with httpx.Client(base_url=gateway.url, timeout=30) as c:
        err = error_of(c.post("/v1/chat/completions", json=CHAT), 502)
    assert "not-a-gemini-model" in err["message"]


def test_invalid_tool_arguments_name_the_message(http: httpx.Client, emu: EmulatorServer) -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{not json"},
                }
            ],
        },
    ]
    err = error_of(http.post("/v1/chat/completions", json={**CHAT, "messages": messages}), 400)
    assert err["param"] == "messages[1].tool_calls[0].function.arguments"
    assert emu.requests() == []  # refused before anything went upstream
