"""Bad input and upstream failures: each gets a truthful status and an OpenAI-style error."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from conftest import EMULATOR_KEY, GatewayFactory, emulator_yaml
from harness import EmulatorServer, GatewayServer, free_port

CHAT = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}


def error_of(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


@pytest.fixture
def http(gateway: GatewayServer) -> httpx.Client:
    with httpx.Client(base_url=gateway.url, timeout=30) as c:
        yield c


def test_malformed_json_is_400(http: httpx.Client) -> None:
    err = error_of(
        http.post(
            "/v1/chat/completions",
            content=b'{"model": "fast",',
            headers={"content-type": "application/json"},
        ),
        400,
    )
    assert "not valid JSON" in err["message"]
    assert err["type"] == "invalid_request_error"


def test_empty_body_is_400(http: httpx.Client) -> None:
    assert "empty" in error_of(http.post("/v1/chat/completions"), 400)["message"]


def test_schema_violation_is_400_naming_the_field_not_422(http: httpx.Client) -> None:
    err = error_of(http.post("/v1/chat/completions", json={**CHAT, "temperature": "hot"}), 400)
    assert err["param"] == "temperature"
    assert "temperature" in err["message"]
    err = error_of(http.post("/ai/chat/completions", json={"model": "fast"}), 400)
    assert err["param"] == "messages"


def test_unknown_model_is_404_saying_how_to_list(http: httpx.Client) -> None:
    err = error_of(http.post("/v1/chat/completions", json={**CHAT, "model": "gpt-9"}), 404)
    assert err["code"] == "model_not_found"
    assert "GET /v1/models" in err["message"]


def test_body_over_limit_is_413(start_gateway: GatewayFactory, emu: EmulatorServer) -> None:
    gw = start_gateway(emulator_yaml(emu), max_body_bytes=4096)
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 5000}]}
    with httpx.Client(base_url=gw.url) as c:
        err = error_of(c.post("/v1/chat/completions", json=big), 413)
        assert "4096" in err["message"]

        def chunks() -> Any:  # no content-length: the limit holds while reading
            data = json.dumps(big).encode()
            for i in range(0, len(data), 1000):
                yield data[i : i + 1000]

        error_of(c.post("/v1/chat/completions", content=chunks()), 413)
        assert c.post("/v1/chat/completions", json=CHAT).status_code == 200


def test_default_limit_is_10_mib(gateway: GatewayServer) -> None:
    assert gateway.gateway.config.gateway.max_body_bytes == 10 * 1024 * 1024


def test_unknown_route_and_wrong_method_are_json(http: httpx.Client) -> None:
    assert "/v1" in error_of(http.get("/v2/chat"), 404)["message"]
    err = error_of(http.get("/v1/chat/completions"), 405)
    assert "GET" in err["message"]


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ({"kind": "status", "status": 401}, 502, "upstream_authentication_failed"),
        ({"kind": "status", "status": 500}, 502, "upstream_error"),
        ({"kind": "status", "status": 503}, 503, "upstream_unavailable"),
        ({"kind": "status", "status": 400}, 400, None),
        ({"kind": "drop"}, 502, "upstream_connection_error"),
    ],
)
def test_upstream_failures_map_to_truthful_statuses(
    http: httpx.Client, emu: EmulatorServer, fault: dict[str, Any], status: int, code: str | None
) -> None:
    emu.add_faults({**fault, "model": "gpt-4o-mini"})
    err = error_of(http.post("/v1/chat/completions", json=CHAT), status)
    if code is not None:
        assert err["code"] == code
    assert EMULATOR_KEY not in json.dumps(err)


def test_upstream_auth_failure_never_shows_a_key(http: httpx.Client, emu: EmulatorServer) -> None:
    emu.add_faults({"kind": "status", "status": 401, "model": "gpt-4o-mini"})
    resp = http.post("/v1/chat/completions", json=CHAT)
    err = error_of(resp, 502)
    assert "credentials" in err["message"]
    assert EMULATOR_KEY not in resp.text
    assert "sk-" not in resp.text


def test_upstream_429_keeps_retry_after(http: httpx.Client, emu: EmulatorServer) -> None:
    emu.add_faults({"kind": "status", "status": 429, "retry_after": 7, "model": "gpt-4o-mini"})
    resp = http.post("/v1/chat/completions", json=CHAT)
    err = error_of(resp, 429)
    assert resp.headers["retry-after"] == "7"
    assert err["type"] == "rate_limit_error"


def test_sdk_sees_the_right_exception_classes(client: openai.OpenAI, emu: EmulatorServer) -> None:
    emu.add_faults({"kind": "status", "status": 429, "retry_after": 1, "model": "gpt-4o-mini"})
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="fast", messages=[])


def test_upstream_timeout_is_504(start_gateway: GatewayFactory, emu: EmulatorServer) -> None:
    gw = start_gateway(
        emulator_yaml(
            emu,
            f"""  - name: slow
    provider: openai
    model: slow-model
    api_base: {emu.url}/v1
    api_key: {EMULATOR_KEY}
    timeout_s: 0.3
""",
        )
    )
    emu.add_faults({"kind": "delay", "seconds": 2, "model": "slow-model", "count": 2})
    with httpx.Client(base_url=gw.url) as c:
        err = error_of(c.post("/v1/chat/completions", json={**CHAT, "model": "slow"}), 504)
        assert err["code"] == "upstream_timeout"
        assert "0.3s" in err["message"]
        # A stream waits no longer than the deployment's timeout for its first byte either.
        stream = {**CHAT, "model": "slow", "stream": True}
        assert error_of(c.post("/v1/chat/completions", json=stream), 504)["code"] == (
            "upstream_timeout"
        )


def test_connection_refused_is_502(start_gateway: GatewayFactory) -> None:
    port = free_port()
    gw = start_gateway(
        f"models:\n  - {{name: gone, provider: openai, model: m, "
        f"api_base: 'http://127.0.0.1:{port}/v1', api_key: sk-x-1234567}}\n"
    )
    with httpx.Client(base_url=gw.url) as c:
        err = error_of(c.post("/v1/chat/completions", json={**CHAT, "model": "gone"}), 502)
    assert err["code"] == "upstream_connection_error"
    assert str(port) not in err["message"]  # internal addresses are for the logs, not clients


def test_stream_failing_before_first_chunk_is_a_plain_http_error(
    http: httpx.Client, emu: EmulatorServer
) -> None:
    emu.add_faults({"kind": "status", "status": 500, "model": "gpt-4o-mini"})
    resp = http.post("/v1/chat/completions", json={**CHAT, "stream": True})
    error_of(resp, 502)


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "drop_mid_stream", "after_chunks": 2},
        {"kind": "error_event", "after_chunks": 2},
    ],
)
def test_mid_stream_failure_ends_with_an_error_event_not_done(
    http: httpx.Client, emu: EmulatorServer, fault: dict[str, Any]
) -> None:
    emu.add_faults({**fault, "model": "gpt-4o-mini"})
    with http.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as resp:
        assert resp.status_code == 200
        events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    assert events, "some chunks arrived before the failure"
    assert "[DONE]" not in events
    last = json.loads(events[-1])
    assert set(last) == {"error"}
    assert last["error"]["message"]
    assert any("choices" in json.loads(e) for e in events[:-1])


def test_sdk_raises_on_mid_stream_failure(client: openai.OpenAI, emu: EmulatorServer) -> None:
    emu.add_faults({"kind": "drop_mid_stream", "after_chunks": 2, "model": "gpt-4o-mini"})
    stream = client.chat.completions.create(
        model="fast", messages=[{"role": "user", "content": "a long answer please"}], stream=True
    )
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass


def test_nothing_crashes_on_garbage(http: httpx.Client) -> None:
    for body in [b"null", b"[]", b"42", b'"text"', b"\xff\xfe", b'{"model": 1, "messages": 2}']:
        resp = http.post("/v1/chat/completions", content=body)
        assert resp.status_code == 400, (body, resp.text)
        error_of(resp, 400)
    assert http.get("/health").status_code == 200
