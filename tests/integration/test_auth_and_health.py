"""Master key, liveness/readiness and metrics over a real socket."""

from __future__ import annotations

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import GatewayFactory, emulator_yaml
from harness import EmulatorServer

MASTER = "gw-master-key-CANARY-4242"
CHAT = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def locked(start_gateway: GatewayFactory, emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AI_GATEWAY_MASTER_KEY", MASTER)
    return start_gateway(emulator_yaml(emu))


def test_master_key_required_on_api_routes(locked, emu: EmulatorServer) -> None:
    with httpx.Client(base_url=locked.url) as c:
        for path in ("/v1/models", "/ai/models"):
            missing = c.get(path)
            assert missing.status_code == 401
            assert missing.json()["error"]["code"] == "missing_api_key"
        wrong = c.post("/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert wrong.json()["error"]["type"] == "authentication_error"
        assert MASTER not in wrong.text
        lower = c.get("/v1/models", headers={"Authorization": f"bearer {MASTER}"})
        assert lower.status_code == 200  # the auth scheme is case-insensitive (RFC 9110)
        assert c.get("/health").status_code == 200  # probes stay open
        assert c.get("/metrics").status_code == 200
    with openai.OpenAI(base_url=f"{locked.url}/v1", api_key=MASTER, max_retries=0) as sdk:
        assert sdk.chat.completions.create(**CHAT).choices[0].message.content  # type: ignore[call-overload]
    with (
        openai.OpenAI(base_url=f"{locked.url}/v1", api_key="wrong", max_retries=0) as sdk,
        pytest.raises(openai.AuthenticationError),
    ):
        sdk.models.list()
    # The gateway key never travels upstream.
    assert all(MASTER not in str(r) for r in emu.requests())


def test_health_and_readiness(gateway) -> None:
    with httpx.Client(base_url=gateway.url) as c:
        assert c.get("/health").json() == {"status": "ok"}
        ready = c.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"]["providers"]["status"] == "ok"


def test_not_ready_without_any_provider(start_gateway: GatewayFactory) -> None:
    gw = start_gateway("{}\n")
    with httpx.Client(base_url=gw.url) as c:
        ready = c.get("/health/ready")
        assert ready.status_code == 503
        check = ready.json()["checks"]["providers"]
        assert check["status"] == "down"
        assert "OPENAI_API_KEY" in check["detail"]
        assert c.get("/health").status_code == 200


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def value(metrics: dict, name: str, **labels: str) -> float:
    return sum(
        v for lbl, v in metrics.get(name, []) if all(lbl.get(k) == x for k, x in labels.items())
    )


def test_metrics_count_requests_tokens_and_latency(client: openai.OpenAI, gateway) -> None:
    client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    list(client.chat.completions.create(**CHAT, stream=True))  # type: ignore[call-overload]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="missing", messages=CHAT["messages"])
    text = httpx.get(f"{gateway.url}/metrics").text
    m = samples(text)
    ok = {"route": "/chat/completions", "model": "fast", "provider": "openai", "status": "200"}
    assert value(m, "ai_gateway_requests_total", **ok) == 2
    assert value(m, "ai_gateway_requests_total", route="/chat/completions", status="404") == 1
    assert value(m, "ai_gateway_request_duration_seconds_count", route="/chat/completions") == 3
    assert value(m, "ai_gateway_tokens_total", model="fast", direction="input") > 0
    assert value(m, "ai_gateway_tokens_total", model="fast", direction="output") > 0
    assert value(m, "ai_gateway_time_to_first_token_seconds_count", provider="openai") == 1
    assert value(m, "ai_gateway_upstream_duration_seconds_count", provider="openai") == 2
    assert value(m, "ai_gateway_in_flight_requests") == 1  # only the /metrics request itself
    assert "sk-" not in text


def test_request_id_is_echoed_or_assigned(gateway) -> None:
    with httpx.Client(base_url=gateway.url) as c:
        response = c.post("/v1/chat/completions", json=CHAT)
        assigned = response.headers["x-request-id"]
        assert len(assigned) == 32
        assert response.headers["x-gateway-request-id"] == assigned
        given = c.get("/health", headers={"x-request-id": "trace-abc.123"})
        assert given.headers["x-request-id"] == "trace-abc.123"
        hostile = c.get("/health", headers={"x-request-id": "bad id\twith stuff"})
        assert hostile.headers["x-request-id"] != "bad id\twith stuff"
