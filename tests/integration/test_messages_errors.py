"""Errors of the gateway's Messages API as Anthropic's SDK sees them: every error on these routes
(authentication, validation, the shared stages' rate limits, upstream failures, a field the
provider cannot take, a failure mid-stream) is Anthropic's error JSON with a truthful status,
parsed by the SDK into its exception classes."""

from __future__ import annotations

import anthropic
import httpx
import pytest
from test_messages_api import three_providers

from conftest import GatewayFactory
from harness import EmulatorServer, GatewayServer

pytestmark = pytest.mark.integration

MASTER = "sk-master-messages-errors-4242"
HELLO = [{"role": "user", "content": "hello"}]


def yaml_for(emu: EmulatorServer, extra: str = "") -> str:
    return "router: {retries: 0}\n" + three_providers(emu) + extra


@pytest.fixture
def gw(emu: EmulatorServer, start_gateway: GatewayFactory) -> GatewayServer:
    return start_gateway(yaml_for(emu), master_key=MASTER)


def sdk(gw: GatewayServer, key: str = MASTER, **options: object) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, **options)  # type: ignore[arg-type]


def test_x_api_key_and_bearer_both_authenticate(gw: GatewayServer) -> None:
    with sdk(gw) as client:
        assert client.messages.create(model="gpt", max_tokens=8, messages=HELLO).content  # type: ignore[arg-type]
    with anthropic.Anthropic(base_url=gw.url, auth_token=MASTER, max_retries=0) as client:
        assert client.messages.create(model="gpt", max_tokens=8, messages=HELLO).content  # type: ignore[arg-type]
    # x-api-key is the Messages API's header only: the OpenAI routes still want a Bearer.
    chat = {"model": "gpt", "messages": HELLO}
    resp = httpx.post(f"{gw.url}/v1/chat/completions", json=chat, headers={"x-api-key": MASTER})
    assert resp.status_code == 401


def test_bad_key_is_an_authentication_error(gw: GatewayServer) -> None:
    bad = sdk(gw, key="sk-not-a-gateway-key-00000000")
    with bad as client, pytest.raises(anthropic.AuthenticationError) as caught:
        client.messages.create(model="gpt", max_tokens=8, messages=HELLO)  # type: ignore[arg-type]
    assert caught.value.status_code == 401
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["type"] == "authentication_error"
    assert "sk-not-a-gateway-key" not in caught.value.response.text
    wrong = sdk(gw, key="sk-wrong-0000000000000000000")
    with wrong as client, pytest.raises(anthropic.AuthenticationError):
        client.messages.count_tokens(model="gpt", messages=HELLO)  # type: ignore[arg-type]


def test_missing_max_tokens_is_an_invalid_request(gw: GatewayServer) -> None:
    resp = httpx.post(
        f"{gw.url}/v1/messages",
        json={"model": "gpt", "messages": HELLO},
        headers={"x-api-key": MASTER},
    )
    assert resp.status_code == 400
    body = resp.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in body["error"]["message"]
    assert body["request_id"] == resp.headers["request-id"]
    with sdk(gw) as client, pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model="gpt", max_tokens=8, messages=[])
    assert caught.value.status_code == 400


def test_unknown_model_and_method(gw: GatewayServer) -> None:
    with sdk(gw) as client, pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.create(model="nope", max_tokens=8, messages=HELLO)  # type: ignore[arg-type]
    assert caught.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    resp = httpx.get(f"{gw.url}/v1/messages", headers={"x-api-key": MASTER})
    assert resp.status_code == 405
    assert resp.json()["error"]["type"] == "invalid_request_error"


def test_rate_limit_is_a_429(emu: EmulatorServer, start_gateway: GatewayFactory) -> None:
    extra = "security:\n  rate_limits:\n    models: {gpt: {rps: 0.01, burst: 1}}\n"
    gw = start_gateway(yaml_for(emu, extra), master_key=MASTER)
    with sdk(gw) as client:
        client.messages.create(model="gpt", max_tokens=8, messages=HELLO)  # type: ignore[arg-type]
        with pytest.raises(anthropic.RateLimitError) as caught:
            client.messages.create(model="gpt", max_tokens=8, messages=HELLO)  # type: ignore[arg-type]
    assert caught.value.status_code == 429
    assert caught.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert int(caught.value.response.headers["retry-after"]) >= 1


@pytest.mark.parametrize(
    ("field", "value", "model", "param"),
    [
        ("top_k", 5, "gpt", "top_k"),
        ("container", "c-1", "gem", "container"),
        ("tools", [{"type": "web_search_20250305", "name": "web_search"}], "gpt", "tools[0]"),
    ],
)
def test_what_a_provider_cannot_take_is_refused(
    gw: GatewayServer, emu: EmulatorServer, field: str, value: object, model: str, param: str
) -> None:
    body = {"model": model, "max_tokens": 8, "messages": HELLO, field: value}
    resp = httpx.post(f"{gw.url}/v1/messages", json=body, headers={"x-api-key": MASTER})
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith(f"{param}:")
    assert error["code"] == "unsupported_for_provider"
    assert not [r for r in emu.requests() if "/_emulator" not in r["path"]]  # never sent
    body["model"] = "claude"  # Anthropic takes it as it is
    if field != "container":
        resp = httpx.post(f"{gw.url}/v1/messages", json=body, headers={"x-api-key": MASTER})
        assert resp.status_code == 200, resp.text


def test_signed_thinking_block_to_openai_is_refused(gw: GatewayServer) -> None:
    messages = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "c2lnbmF0dXJl"},
                {"type": "text", "text": "Hello"},
            ],
        },
        {"role": "user", "content": "again"},
    ]
    with sdk(gw) as client, pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model="gpt", max_tokens=8, messages=messages)  # type: ignore[arg-type]
    assert "messages[1].content[0]" in caught.value.message
    assert "thinking" in caught.value.message


def test_upstream_failures(gw: GatewayServer, emu: EmulatorServer) -> None:
    emu.add_faults({"kind": "status", "status": 529, "provider": "anthropic"})
    with sdk(gw) as client:
        with pytest.raises(anthropic.InternalServerError) as caught:
            client.messages.create(model="claude", max_tokens=8, messages=HELLO)  # type: ignore[arg-type]
        assert caught.value.status_code == 503
        assert caught.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
        emu.add_faults({"kind": "status", "status": 400, "provider": "openai"})
        with pytest.raises(anthropic.BadRequestError):
            client.messages.create(model="gpt", max_tokens=8, messages=HELLO)  # type: ignore[arg-type]


@pytest.mark.parametrize("model", ["claude", "gpt"])
def test_failure_mid_stream_is_an_error_event(
    gw: GatewayServer, emu: EmulatorServer, model: str
) -> None:
    provider = "anthropic" if model == "claude" else "openai"
    emu.add_faults({"kind": "error_event", "after_chunks": 4, "provider": provider})
    body = {
        "model": model,
        "max_tokens": 64,
        "stream": True,
        "messages": [{"role": "user", "content": "a long answer [[words:40]]"}],
    }
    with httpx.stream(
        "POST", f"{gw.url}/v1/messages", json=body, headers={"x-api-key": MASTER}, timeout=30
    ) as resp:
        assert resp.status_code == 200
        lines = [line for line in resp.iter_lines() if line]
    assert lines[-2] == "event: error"
    assert '"type":"error"' in lines[-1]
    assert "message_stop" not in "".join(lines)
    with sdk(gw) as client:
        emu.add_faults({"kind": "error_event", "after_chunks": 4, "provider": provider})
        with (
            pytest.raises(anthropic.APIStatusError),
            client.messages.stream(
                model=model,
                max_tokens=64,
                messages=body["messages"],  # type: ignore[arg-type]
            ) as stream,
        ):
            list(stream)
