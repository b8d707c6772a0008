"""Every answered request is charged, and every one leaves its own usage row.

- A stream that ends before the provider's usage (the client leaves, the upstream cuts it) is
  charged for what was streamed: the streamed text counted by the gateway's token counter, plus
  the prompt, in the usage record and in the budget.
- A budgeted caller cannot reach a model the registry has no price for (nothing reaches the
  upstream) until the operator prices it.
- A client's `x-request-id` used again leaves one row per request: the row's key is the
  gateway's own id (`x-gateway-request-id`), the client's id is kept beside it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from ai_gateway.emulator.app import EmulatorSettings
from conftest import EMULATOR_KEY, GatewayFactory, emulator_yaml
from harness import EmulatorServer, GatewayServer

pytestmark = pytest.mark.integration

MASTER = "sk-master-billing-7c21"
ADMIN = {"Authorization": f"Bearer {MASTER}"}
UNLIMITED = "security: {rate_limits: {user: {rps: 100000, burst: 100000}}}"
LONG = "tell me a long story [[words:3000]]"


@pytest.fixture(scope="module")
def slow_emu() -> Iterator[EmulatorServer]:
    """An emulator whose streams take long enough (a frame every 5 ms) to be left mid-way."""
    server = EmulatorServer(EmulatorSettings(chunk_delay_s=0.005))
    yield server
    server.stop()


def usage_rows(gw: GatewayServer, group: str) -> dict[str, dict[str, Any]]:
    resp = httpx.get(
        f"{gw.url}/ai/analytics/usage",
        params={"start": "1h", "group_by": group},
        headers=ADMIN,
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    return {row["group"]: row for row in resp.json()["data"]}


def budgeted_key(gw: GatewayServer, budget: str) -> tuple[str, dict[str, str]]:
    created = httpx.post(
        f"{gw.url}/admin/keys",
        json={"user": "mallory", "budget_usd": budget, "budget_period": "day"},
        headers=ADMIN,
    ).json()
    return created["id"], {"Authorization": f"Bearer {created['key']}"}


def read_some_and_leave(gw: GatewayServer, headers: dict[str, str], events: int) -> int:
    """Open a long stream, read `events` data events, close the connection; the events read."""
    body = {"model": "fast", "stream": True, "messages": [{"role": "user", "content": LONG}]}
    seen = 0
    with httpx.stream(
        "POST", f"{gw.url}/v1/chat/completions", json=body, headers=headers, timeout=30
    ) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("data: "):
                assert line != "data: [DONE]", "the stream ended before the client left"
                seen += 1
                if seen == events:
                    break
    return seen


def test_an_abandoned_stream_is_charged_and_exhausts_the_budget(
    start_gateway: GatewayFactory, slow_emu: EmulatorServer
) -> None:
    gw = start_gateway(emulator_yaml(slow_emu, UNLIMITED), master_key=MASTER)
    key_id, headers = budgeted_key(gw, "0.0001")
    read_some_and_leave(gw, headers, 200)
    # The stream's record is written once the gateway has noticed the client left.
    row: dict[str, Any] = {}
    for _ in range(100):
        row = usage_rows(gw, "key").get(key_id, {})
        if row:
            break
        time.sleep(0.05)
    assert row, "the abandoned stream left no usage record"
    assert row["requests"] == 1
    assert row["completion_tokens"] >= 200  # one word per frame: at least what was read
    assert row["prompt_tokens"] > 0
    assert Decimal(row["cost_usd"]) > 0
    # 200 output tokens of gpt-4o-mini cost more than $0.0001: the budget is used up.
    refused = httpx.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": "fast", "messages": [{"role": "user", "content": "hi"}]},
        headers=headers,
    )
    assert refused.status_code == 402, refused.text


def test_a_stream_cut_by_the_upstream_is_charged_for_what_was_streamed(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    gw = start_gateway(emulator_yaml(emu, UNLIMITED), master_key=MASTER)
    key_id, headers = budgeted_key(gw, "10")
    emu.add_faults({"kind": "drop_mid_stream", "after_chunks": 40})
    body = {"model": "fast", "stream": True, "messages": [{"role": "user", "content": LONG}]}
    with httpx.stream(
        "POST", f"{gw.url}/v1/chat/completions", json=body, headers=headers, timeout=30
    ) as resp:
        assert resp.status_code == 200
        lines = [line for line in resp.iter_lines() if line.startswith("data: ")]
    assert '"error"' in lines[-1]  # the cut is reported in the stream
    row = usage_rows(gw, "key")[key_id]
    assert row["requests"] == 1
    assert row["errors"] == 1
    assert 30 <= row["completion_tokens"] <= 150  # ~40 frames of a word (1-3 tokens) each
    assert row["prompt_tokens"] > 0
    assert Decimal(row["cost_usd"]) > 0
    by_model = usage_rows(gw, "model")["fast"]
    assert by_model["unpriced_requests"] == 0


def test_a_budgeted_key_cannot_use_an_unpriced_model(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    gw = start_gateway(emulator_yaml(emu, UNLIMITED), master_key=MASTER)
    _, headers = budgeted_key(gw, "5")
    body = {"model": "openai/o1-pro", "messages": [{"role": "user", "content": "hi"}]}
    for stream in (False, True):
        resp = httpx.post(
            f"{gw.url}/v1/chat/completions", json={**body, "stream": stream}, headers=headers
        )
        assert resp.status_code == 403, resp.text
        error = resp.json()["error"]
        assert error["code"] == "model_not_priced"
        assert error["param"] == "model"
        assert "o1-pro" in error["message"]
        assert "registry" in error["message"]
    assert emu.requests() == []  # nothing reached the upstream
    # The master key has no budget: it may use the model.
    ok = httpx.post(f"{gw.url}/v1/chat/completions", json=body, headers=ADMIN)
    assert ok.status_code == 200


def test_a_price_from_the_config_lets_a_budgeted_key_use_the_model(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    priced = """
registry:
  - {provider: openai, id: o1-pro, mode: chat, context_window: 200000,
     input_price: "150", output_price: "600"}
"""
    gw = start_gateway(emulator_yaml(emu, UNLIMITED + priced), master_key=MASTER)
    key_id, headers = budgeted_key(gw, "5")
    body = {"model": "openai/o1-pro", "messages": [{"role": "user", "content": "hi"}]}
    resp = httpx.post(f"{gw.url}/v1/chat/completions", json=body, headers=headers)
    assert resp.status_code == 200, resp.text
    assert Decimal(resp.headers["x-gateway-cost-usd"]) > 0
    assert Decimal(usage_rows(gw, "key")[key_id]["cost_usd"]) > 0


def test_a_reused_client_request_id_leaves_one_row_per_request(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    gw = start_gateway(emulator_yaml(emu, UNLIMITED), master_key=MASTER)
    key_id, headers = budgeted_key(gw, "5")
    with openai.OpenAI(
        base_url=f"{gw.url}/v1",
        api_key=headers["Authorization"].removeprefix("Bearer "),
        max_retries=0,
        default_headers={"x-request-id": "retry-lib-0001"},
    ) as client:
        replies = [
            client.chat.completions.with_raw_response.create(
                model="fast", messages=[{"role": "user", "content": f"question {i}"}]
            )
            for i in range(4)
        ]
    assert {r.headers["x-request-id"] for r in replies} == {"retry-lib-0001"}
    own = [r.headers["x-gateway-request-id"] for r in replies]
    assert len(set(own)) == 4
    assert "retry-lib-0001" not in own
    row = usage_rows(gw, "key")[key_id]
    assert row["requests"] == 4
    total = sum(Decimal(r.headers["x-gateway-cost-usd"]) for r in replies)
    assert Decimal(row["cost_usd"]) == total
    # The client's id finds all four; the gateway's finds one, and takes feedback.
    found = httpx.get(
        f"{gw.url}/ai/analytics/requests",
        params={"start": "1h", "client_request_id": "retry-lib-0001"},
        headers=ADMIN,
    )
    assert found.status_code == 200, found.text
    assert sorted(r["request_id"] for r in found.json()["data"]) == sorted(own)
    assert {r["client_request_id"] for r in found.json()["data"]} == {"retry-lib-0001"}
    one = httpx.get(
        f"{gw.url}/ai/analytics/requests",
        params={"start": "1h", "request_id": own[2]},
        headers=ADMIN,
    ).json()["data"]
    assert [r["request_id"] for r in one] == [own[2]]
    feedback = httpx.post(
        f"{gw.url}/ai/feedback", json={"request_id": own[2], "score": "up"}, headers=headers
    )
    assert feedback.status_code == 201, feedback.text


def test_a_budgeted_key_is_charged_for_embeddings(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    gw = start_gateway(emulator_yaml(emu, UNLIMITED), master_key=MASTER)
    key_id, headers = budgeted_key(gw, "5")
    body = {"model": "embed", "input": ["one two three", "four five"]}
    resp = httpx.post(f"{gw.url}/v1/embeddings", json=body, headers=headers)
    assert resp.status_code == 200, resp.text
    # text-embedding-3-small has an input price only: that is enough to price it.
    expected = Decimal(resp.json()["usage"]["prompt_tokens"]) * Decimal("0.02") / 10**6
    assert Decimal(resp.headers["x-gateway-cost-usd"]) == expected
    assert Decimal(usage_rows(gw, "key")[key_id]["cost_usd"]) == expected


def test_concurrent_requests_reserve_their_cost_and_overshoot_by_less_than_one(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    gw = start_gateway(emulator_yaml(emu, UNLIMITED), master_key=MASTER)
    body = {
        "model": "fast",
        "max_tokens": 400,
        "messages": [{"role": "user", "content": "go on [[words:200]]"}],
    }
    one = httpx.post(f"{gw.url}/v1/chat/completions", json=body, headers=ADMIN)
    cost = Decimal(one.headers["x-gateway-cost-usd"])
    budget = cost * 5
    key_id, headers = budgeted_key(gw, str(budget))
    emu.add_faults({"kind": "delay", "seconds": 0.5, "count": 100})

    async def wave() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=gw.url, headers=headers, timeout=30) as client:
            return list(
                await asyncio.gather(
                    *[client.post("/v1/chat/completions", json=body) for _ in range(20)]
                )
            )

    replies = asyncio.run(wave())
    emu.reset()
    statuses = [r.status_code for r in replies]
    admitted = statuses.count(200)
    assert 1 <= admitted < 20, statuses
    refused = [r.json()["error"] for r in replies if r.status_code == 429]
    assert len(refused) == 20 - admitted
    assert {e["code"] for e in refused} == {"budget_reserved"}
    assert "reserved by requests in flight" in refused[0]["message"]
    assert "{" not in refused[0]["message"]  # figures, not a template
    assert f"budget of {budget} USD per day is committed: 0 USD spent" in refused[0]["message"]
    assert all(r.headers["retry-after"] == "1" for r in replies if r.status_code == 429)
    spent = Decimal(usage_rows(gw, "key")[key_id]["cost_usd"])
    assert spent == cost * admitted
    assert spent < budget + cost  # without reservations: 20 x cost, four times the budget
    # The reservations were given back: the budget's rest is usable, one request at a time.
    while spent < budget:
        resp = httpx.post(f"{gw.url}/v1/chat/completions", json=body, headers=headers)
        assert resp.status_code == 200, resp.text
        spent += Decimal(resp.headers["x-gateway-cost-usd"])
    assert (
        httpx.post(f"{gw.url}/v1/chat/completions", json=body, headers=headers).status_code == 402
    )


@pytest.mark.parametrize(
    ("provider", "model", "base"),
    [
        ("openai", "gpt-4o-mini", "/v1"),
        ("anthropic", "claude-sonnet-4-5", ""),
        ("gemini", "gemini-2.5-flash", ""),
    ],
)
def test_a_cut_stream_is_recorded_with_its_tokens_on_every_provider(
    start_gateway: GatewayFactory, emu: EmulatorServer, provider: str, model: str, base: str
) -> None:
    config = f"""
router: {{retries: 0}}
models:
  - {{name: m, provider: {provider}, model: {model}, api_base: "{emu.url}{base}",
     api_key: {EMULATOR_KEY}}}
"""
    gw = start_gateway(config)  # no authentication, no budget: analytics alone
    emu.add_faults({"kind": "drop_mid_stream", "after_chunks": 30})
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": LONG}]}
    with httpx.stream("POST", f"{gw.url}/v1/chat/completions", json=body, timeout=30) as resp:
        assert resp.status_code == 200
        resp.read()
    [row] = httpx.get(
        f"{gw.url}/ai/analytics/requests",
        params={"start": "1h", "request_id": resp.headers["x-gateway-request-id"]},
    ).json()["data"]
    assert row["usage_estimated"] is True
    assert row["prompt_tokens"] > 0
    assert row["completion_tokens"] >= 10
    assert Decimal(row["cost_usd"]) > 0
    # A stream that ends normally keeps the provider's own usage.
    with httpx.stream("POST", f"{gw.url}/v1/chat/completions", json=body, timeout=30) as whole:
        whole.read()
    [row] = httpx.get(
        f"{gw.url}/ai/analytics/requests",
        params={"start": "1h", "request_id": whole.headers["x-gateway-request-id"]},
    ).json()["data"]
    assert row["usage_estimated"] is False
    assert row["completion_tokens"] > 3000  # the emulator's count: one per word


def test_a_fallback_to_an_unpriced_model_is_skipped_under_a_budget(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    config = f"""
router: {{retries: 0, fallbacks: {{fast: [pricey]}}}}
{UNLIMITED}
models:
  - {{name: fast, provider: openai, model: gpt-4o-mini, api_base: "{emu.url}/v1",
     api_key: {EMULATOR_KEY}}}
  - {{name: pricey, provider: openai, model: o1-pro, api_base: "{emu.url}/v1",
     api_key: {EMULATOR_KEY}}}
"""
    gw = start_gateway(config, master_key=MASTER)
    _, headers = budgeted_key(gw, "5")
    body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}
    emu.add_faults({"kind": "status", "status": 503, "model": "gpt-4o-mini", "count": 2})
    resp = httpx.post(f"{gw.url}/v1/chat/completions", json=body, headers=headers)
    assert resp.status_code == 503, resp.text  # fast's own error: the fallback was skipped
    assert "x-gateway-fallbacks" not in resp.headers
    assert [r["body"]["model"] for r in emu.requests()] == ["gpt-4o-mini"]
    # Without a budget the fallback is taken.
    emu.reset()
    emu.add_faults({"kind": "status", "status": 503, "model": "gpt-4o-mini", "count": 2})
    resp = httpx.post(f"{gw.url}/v1/chat/completions", json=body, headers=ADMIN)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-gateway-fallbacks"] == "pricey"
