"""The analytics and feedback API through a whole gateway against the emulator: real chat
requests (plain, streamed, failed), then the reports' totals equal what the emulator served,
token for token and cent for cent; feedback on those requests (201/404/400); the master key
guards the API but not the dashboard page. (Exact report semantics over known records:
test_analytics_reports.py.)"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from ai_gateway.model_registry import load_default_registry
from ai_gateway.schemas.analytics import (
    ErrorsReport,
    FeedbackReport,
    ModelsReport,
    TimeseriesReport,
    UsageReport,
)
from conftest import GatewayFactory, emulator_yaml
from harness import EmulatorServer, GatewayServer

pytestmark = pytest.mark.integration
MASTER_KEY = "sk-analytics-master-0000"
SCHEMAS: dict[str, type[BaseModel]] = {
    "usage": UsageReport,
    "models": ModelsReport,
    "errors": ErrorsReport,
    "feedback": FeedbackReport,
    "timeseries": TimeseriesReport,
}


def gateway_yaml(emu: EmulatorServer, data_dir: Path, master_key: str | None = None) -> str:
    key = f', master_key: "{master_key}"' if master_key else ""
    return emulator_yaml(emu, f'gateway: {{data_dir: "{data_dir}"{key}}}')


def report(base: str, name: str, **params: str) -> dict[str, Any]:
    resp = httpx.get(f"{base}/ai/analytics/{name}", params=params)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    SCHEMAS[name].model_validate(body)
    return body


def chat_requests(gw: GatewayServer, emu: EmulatorServer, headers: dict[str, str]) -> list[str]:
    """2 plain, 2 streamed, 1 failing chat request; returns the request ids (failure last)."""
    ids: list[str] = []
    with httpx.Client(base_url=gw.url, headers=headers, timeout=30) as client:
        for i in range(2):
            body = {"model": "fast", "messages": [{"role": "user", "content": f"hello {i} " * 5}]}
            resp = client.post("/v1/chat/completions", json=body)
            assert resp.status_code == 200
            ids.append(resp.headers["x-request-id"])
            stream = {**body, "stream": True, "stream_options": {"include_usage": True}}
            with client.stream("POST", "/ai/chat/completions", json=stream) as streamed:
                assert streamed.status_code == 200
                streamed.read()
                ids.append(streamed.headers["x-request-id"])
        emu.add_faults({"kind": "status", "status": 500, "provider": "openai"})
        failed = client.post(
            "/v1/chat/completions",
            json={"model": "fast", "messages": [{"role": "user", "content": "fail"}]},
        )
        assert failed.status_code == 502
        ids.append(failed.headers["x-request-id"])
    return ids


def test_reports_match_what_the_emulator_served(
    start_gateway: GatewayFactory, emu: EmulatorServer, tmp_path: Path
) -> None:
    gw = start_gateway(gateway_yaml(emu, tmp_path))
    ids = chat_requests(gw, emu, {})
    served = emu.stats()["providers"]["openai"]["gpt-4o-mini"]
    info = load_default_registry().get("openai", "gpt-4o-mini")
    assert info is not None
    assert info.input_price is not None
    assert info.output_price is not None
    expected_cost = (
        served["prompt_tokens"] * info.input_price + served["completion_tokens"] * info.output_price
    ) / Decimal(1_000_000)

    usage = report(gw.url, "usage", group_by="model")
    assert usage["complete"] is True
    (row,) = usage["data"]
    assert row["group"] == "fast"
    assert (row["requests"], row["errors"]) == (5, 1)
    assert row["prompt_tokens"] == served["prompt_tokens"]
    assert row["completion_tokens"] == served["completion_tokens"]
    assert Decimal(usage["totals"]["cost_usd"]) == expected_cost > 0

    models = report(gw.url, "models")["data"]
    assert sum(m["requests"] for m in models) == 5
    (fast,) = [m for m in models if m["model"] == "fast"]
    assert fast["deployment"] == "fast/0"
    assert fast["p95_latency_ms"] >= fast["p50_latency_ms"] > 0
    assert fast["p50_ttft_ms"] > 0  # the two streams
    assert Decimal(fast["cost_per_1k_requests"]) > 0
    errors = report(gw.url, "errors")
    assert [(e["request_id"], e["status"]) for e in errors["data"]] == [(ids[-1], 502)]
    series = report(gw.url, "timeseries", start="1h")
    assert sum(point["requests"] for point in series["data"]) == 5
    assert sum(point["errors"] for point in series["data"]) == 1


def test_feedback_on_a_request_just_served(
    start_gateway: GatewayFactory, emu: EmulatorServer, tmp_path: Path
) -> None:
    gw = start_gateway(gateway_yaml(emu, tmp_path))
    ids = chat_requests(gw, emu, {})
    created = httpx.post(
        f"{gw.url}/ai/feedback",
        json={"request_id": ids[0], "score": 4, "comment": "useful", "tags": ["docs"]},
    )
    assert created.status_code == 201, created.text
    assert created.json() | {"created_at": None} == {
        "object": "feedback",
        "request_id": ids[0],
        "created_at": None,
        "score": 0.75,
        "raw_score": "4",
        "comment": "useful",
        "tags": ["docs"],
    }
    assert (
        httpx.post(
            f"{gw.url}/ai/feedback", json={"request_id": ids[1], "score": "down"}
        ).status_code
        == 201
    )
    missing = httpx.post(f"{gw.url}/ai/feedback", json={"request_id": "never-seen", "score": 1})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "request_not_found"
    too_long = httpx.post(
        f"{gw.url}/ai/feedback", json={"request_id": ids[0], "score": 1, "comment": "x" * 4001}
    )
    assert too_long.status_code == 400
    assert too_long.json()["error"]["param"] == "comment"
    feedback = report(gw.url, "feedback")
    assert feedback["totals"] == {"count": 2, "mean_score": 0.375, "positive": 1, "negative": 1}
    assert [(r["group"], r["count"]) for r in feedback["data"]] == [("fast", 2)]


def test_master_key_guards_the_api_but_not_the_page(
    start_gateway: GatewayFactory, emu: EmulatorServer, tmp_path: Path
) -> None:
    gw = start_gateway(gateway_yaml(emu, tmp_path, MASTER_KEY))
    for path in ("/ai/analytics/usage", "/ai/analytics/timeseries"):
        denied = httpx.get(f"{gw.url}{path}")
        assert denied.status_code == 401
        assert denied.json()["error"]["type"] == "authentication_error"
        allowed = httpx.get(f"{gw.url}{path}", headers={"Authorization": f"Bearer {MASTER_KEY}"})
        assert allowed.status_code == 200
    assert (
        httpx.post(f"{gw.url}/ai/feedback", json={"request_id": "x", "score": 1}).status_code == 401
    )
    page = httpx.get(f"{gw.url}/dashboard")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert MASTER_KEY not in page.text


def test_feedback_only_on_the_callers_own_requests(
    start_gateway: GatewayFactory, emu: EmulatorServer, tmp_path: Path
) -> None:
    gw = start_gateway(gateway_yaml(emu, tmp_path, MASTER_KEY))
    admin = {"Authorization": f"Bearer {MASTER_KEY}"}

    def key_of(user: str) -> dict[str, str]:
        created = httpx.post(f"{gw.url}/admin/keys", json={"user": user}, headers=admin)
        assert created.status_code == 201, created.text
        return {"Authorization": f"Bearer {created.json()['key']}"}

    alice, alice_other_key, bob = key_of("alice"), key_of("alice"), key_of("bob")

    def post(headers: dict[str, str], request_id: str) -> httpx.Response:
        return httpx.post(
            f"{gw.url}/ai/feedback", json={"request_id": request_id, "score": 1}, headers=headers
        )

    def not_found_for(request_id: str) -> dict[str, Any]:
        resp = post(bob, request_id)
        assert resp.status_code == 404, resp.text
        error: dict[str, Any] = resp.json()["error"]
        return {**error, "message": error["message"].replace(request_id, "<id>")}

    for stored in (False, True):  # still in the writer's buffer, then in the store
        served = httpx.post(
            f"{gw.url}/v1/chat/completions",
            json={"model": "fast", "messages": [{"role": "user", "content": "mine"}]},
            headers=alice,
        )
        assert served.status_code == 200
        request_id = served.headers["x-request-id"]
        if stored:  # a report flushes the writer first
            assert httpx.get(f"{gw.url}/ai/analytics/usage", headers=admin).status_code == 200
        # Someone else's request looks exactly like one that does not exist.
        assert not_found_for(request_id) == not_found_for(f"unknown-{stored}")
        assert post(alice, request_id).status_code == 201
        assert post(alice_other_key, request_id).status_code == 201  # the same user
        assert post(admin, request_id).status_code == 201
    feedback = report_as(gw.url, "feedback", admin)
    assert feedback["totals"]["count"] == 6


def report_as(base: str, name: str, headers: dict[str, str]) -> dict[str, Any]:
    resp = httpx.get(f"{base}/ai/analytics/{name}", headers=headers)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body
