"""Comparing prompt template versions through a real gateway: a template with two versions made
over the admin API, chats through the official `openai` SDK naming each version (one failing
upstream, at the emulator), feedback on some of them, then GET /ai/analytics/prompts: one row per
version, with the numbers the requests' own records add up to."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from jsonschema import Draft202012Validator

from ai_gateway.schemas.analytics import PromptsReport
from conftest import GatewayFactory, emulator_yaml
from harness import EmulatorServer, GatewayServer

pytestmark = pytest.mark.integration

MASTER = "sk-master-prompt-analytics-3c9a"
ADMIN = {"Authorization": f"Bearer {MASTER}"}
GREET: dict[str, Any] = {
    "id": "greet",
    "template": {
        "model": "fast",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "Say hello to {{ name }}."}],
    },
    "variables": {
        "type": "object",
        "properties": {"name": {"type": "string"}},
        "required": ["name"],
    },
}
GREET_2 = {
    "template": {
        "model": "fast",
        "max_tokens": 50,
        "messages": [
            {"role": "system", "content": "You are warm and brief."},
            {"role": "user", "content": "Greet {{ name }} by name, in one sentence."},
        ],
    },
    "variables": GREET["variables"],
}


def admin(gw: GatewayServer, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{gw.url}{path}", headers=ADMIN, timeout=20, **kwargs)


def chat(client: openai.OpenAI, version: int, name: str) -> tuple[str, int, int]:
    """A chat rendered from greet@`version`: (its gateway request id, prompt and completion
    tokens)."""
    raw = client.chat.completions.with_raw_response.create(
        model="fast",
        messages=[],
        extra_body={"prompt": {"id": "greet", "version": version, "variables": {"name": name}}},
    )
    assert raw.headers["x-gateway-prompt"] == f"greet@{version}"
    usage = raw.parse().usage
    assert usage is not None
    return raw.headers["x-gateway-request-id"], usage.prompt_tokens, usage.completion_tokens


def report(gw: GatewayServer, **params: str) -> dict[str, Any]:
    resp = admin(gw, "GET", "/ai/analytics/prompts", params={"start": "1h", **params})
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    PromptsReport.model_validate(body)
    return body


def recorded(gw: GatewayServer, request_id: str) -> dict[str, Any]:
    params = {"start": "1h", "request_id": request_id}
    [row] = admin(gw, "GET", "/ai/analytics/requests", params=params).json()["data"]
    return row  # type: ignore[no-any-return]


@pytest.fixture
def gw(emu: EmulatorServer, start_gateway: GatewayFactory) -> GatewayServer:
    return start_gateway(emulator_yaml(emu), master_key=MASTER)


def test_each_version_s_requests_tokens_cost_latency_errors_and_feedback(
    gw: GatewayServer, emu: EmulatorServer
) -> None:
    assert admin(gw, "POST", "/v1/prompts", json=GREET).status_code == 201
    assert admin(gw, "POST", "/v1/prompts/greet/versions", json=GREET_2).status_code == 201
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=MASTER, max_retries=0) as client:
        v1 = [chat(client, 1, name) for name in ("Ada", "Grace")]
        v2 = [chat(client, 2, name) for name in ("Alan", "Edsger")]
        emu.add_faults({"kind": "status", "status": 500, "provider": "openai"})  # the next one
        with pytest.raises(openai.APIStatusError) as failed:
            chat(client, 2, "Barbara")
        assert failed.value.status_code == 502
        failed_id = failed.value.response.headers["x-gateway-request-id"]
        plain = client.chat.completions.create(  # no template: not in the report
            model="fast", messages=[{"role": "user", "content": "hi"}]
        )
        assert plain.choices
    scores = [(v1[0][0], "up"), (v1[1][0], 3), (v2[0][0], "down"), (failed_id, 1)]
    for request_id, score in scores:
        resp = httpx.post(
            f"{gw.url}/ai/feedback",
            headers=ADMIN,
            json={"request_id": request_id, "score": score},
            timeout=20,
        )
        assert resp.status_code == 201, resp.text

    # A record is submitted once its response is done: wait until all five are in.
    deadline = time.monotonic() + 10
    while True:
        body = report(gw)
        if sum(row["requests"] for row in body["data"]) >= 5:
            break
        assert time.monotonic() < deadline, body
        time.sleep(0.1)
    assert body["complete"] is True
    assert body["prompt_id"] is None
    first, second = body["data"]
    assert (first["prompt_id"], first["prompt_version"]) == ("greet", 1)
    assert (second["prompt_id"], second["prompt_version"]) == ("greet", 2)

    assert (first["requests"], first["errors"], first["error_rate"]) == (2, 0, 0.0)
    assert (second["requests"], second["errors"]) == (3, 1)
    assert second["error_rate"] == pytest.approx(1 / 3)
    for row, calls in ((first, v1), (second, v2)):  # the failed call used no tokens
        assert row["prompt_tokens"] == sum(c[1] for c in calls) > 0
        assert row["completion_tokens"] == sum(c[2] for c in calls) > 0
        assert row["total_tokens"] == row["prompt_tokens"] + row["completion_tokens"]

    # Cost and latency: what each request's own record says, added up exactly.
    for row, ids in ((first, [c[0] for c in v1]), (second, [*(c[0] for c in v2), failed_id])):
        records = [recorded(gw, request_id) for request_id in ids]
        assert all(r["prompt_id"] == "greet" for r in records)
        costs = [Decimal(r["cost_usd"]) for r in records if r["cost_usd"] is not None]
        assert costs
        assert Decimal(row["cost_usd"]) == sum(costs)
        assert row["unpriced_requests"] == len(records) - len(costs)
        latencies = sorted(r["latency_ms"] for r in records)
        assert row["mean_latency_ms"] == pytest.approx(sum(latencies) / len(latencies))
        assert latencies[0] <= row["p50_latency_ms"] <= row["p95_latency_ms"] <= latencies[-1]

    # Feedback: "up" (1.0) and 3 of 5 (0.5) on v1; "down" (0.0) and 1 of 5 (0.0) on v2.
    assert (first["feedback_count"], first["mean_score"]) == (2, pytest.approx(0.75))
    assert (second["feedback_count"], second["mean_score"]) == (2, 0.0)

    # One template; and the document's schema describes the answer.
    assert report(gw, prompt_id="greet")["data"] == body["data"]
    assert report(gw, prompt_id="other")["data"] == []
    spec = httpx.get(f"{gw.url}/openapi.json").json()
    schema = {"$ref": "#/components/schemas/PromptsReport", "components": spec["components"]}
    assert not list(Draft202012Validator(schema).iter_errors(body))


def test_bad_parameters_and_callers_without_the_master_key_are_refused(
    gw: GatewayServer,
) -> None:
    resp = admin(gw, "GET", "/ai/analytics/prompts", params={"prompt_id": "a b"})
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "prompt_id"
    resp = admin(gw, "GET", "/ai/analytics/prompts", params={"version": "1"})
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "version"
    assert httpx.get(f"{gw.url}/ai/analytics/prompts", timeout=20).status_code == 401
    wrong = {"Authorization": "Bearer sk-not-the-master"}
    assert httpx.get(f"{gw.url}/ai/analytics/prompts", headers=wrong, timeout=20).status_code == 401
