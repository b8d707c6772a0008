"""Budgets: a key's (and a user's) spend over a period is capped. A request that would start over
budget gets 402 with the budget and the spend; requests already in flight when the budget is
reached may take the spend over it, but never by more than they cost (the documented bound:
concurrent requests x the most one request costs)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx
import pytest

from conftest import GatewayFactory, emulator_yaml
from harness import EmulatorServer, GatewayServer

pytestmark = pytest.mark.integration

MASTER = "sk-master-budget-41d9"
ADMIN = {"Authorization": f"Bearer {MASTER}"}
# Budgets, not rate limits, are under test: requests here come faster than the default 10/s.
UNLIMITED = "security: {rate_limits: {user: {rps: 100000, burst: 100000}}}"
BODY = {"model": "fast", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 8}


def spend_by(gw: GatewayServer, group: str) -> dict[str, Decimal]:
    rows = httpx.get(
        f"{gw.url}/ai/analytics/usage",
        params={"start": "1h", "group_by": group},
        headers=ADMIN,
        timeout=10,
    ).json()["data"]
    return {row["group"]: Decimal(row["cost_usd"] or "0") for row in rows}


def new_key(gw: GatewayServer, **fields: Any) -> tuple[str, str]:
    created = httpx.post(
        f"{gw.url}/admin/keys", json={"user": "paula", **fields}, headers=ADMIN
    ).json()
    return created["id"], created["key"]


def budgeted_key(gw: GatewayServer, budget: Decimal, period: str) -> tuple[str, dict[str, str]]:
    """A new key with `budget` USD per `period`: its id and the headers to call with it."""
    key_id, key = new_key(gw, budget_usd=str(budget), budget_period=period)
    return key_id, {"Authorization": f"Bearer {key}"}


def cost_of_one_request(gw: GatewayServer) -> Decimal:
    """What one BODY request costs, learnt with a key of its own (no budget)."""
    _, probe = new_key(gw)
    resp = httpx.post(
        f"{gw.url}/v1/chat/completions", json=BODY, headers={"Authorization": f"Bearer {probe}"}
    )
    cost = Decimal(resp.headers["x-gateway-cost-usd"])
    assert cost > 0
    return cost


def test_a_budget_refuses_requests_once_spent_with_402(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    gw = start_gateway(emulator_yaml(emu, UNLIMITED), master_key=MASTER)
    cost = cost_of_one_request(gw)
    budget = cost * 3 + cost / 2  # room for 3.5 requests: the 4th starts under budget
    key_id, headers = budgeted_key(gw, budget, "day")
    statuses = [
        httpx.post(f"{gw.url}/v1/chat/completions", json=BODY, headers=headers).status_code
        for _ in range(6)
    ]
    assert statuses == [200, 200, 200, 200, 402, 402]
    refused = httpx.post(f"{gw.url}/v1/chat/completions", json=BODY, headers=headers)
    error = refused.json()["error"]
    assert refused.status_code == 402
    assert error["code"] == "budget_exceeded"
    assert error["type"] == "insufficient_quota"
    assert f"budget of {budget} USD per day" in error["message"]
    assert f"spent {(cost * 4).normalize():f} USD" in error["message"]
    spent = spend_by(gw, "key")[key_id]
    assert spent == cost * 4  # sequential: the overshoot is at most one request
    assert spent - budget <= cost


def test_concurrent_requests_overshoot_by_at_most_what_is_in_flight(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    gw = start_gateway(emulator_yaml(emu, UNLIMITED), master_key=MASTER)
    cost = cost_of_one_request(gw)
    budget = cost * 10
    key_id, headers = budgeted_key(gw, budget, "month")
    in_flight = 6
    emu.add_faults({"kind": "delay", "seconds": 0.3, "count": 1000})

    async def waves() -> list[int]:
        statuses: list[int] = []
        async with httpx.AsyncClient(base_url=gw.url, headers=headers, timeout=30) as client:
            for _ in range(5):
                replies = await asyncio.gather(
                    *[client.post("/v1/chat/completions", json=BODY) for _ in range(in_flight)]
                )
                statuses += [r.status_code for r in replies]
        return statuses

    statuses = asyncio.run(waves())
    emu.reset()
    assert statuses.count(402) > 0
    admitted = statuses.count(200)
    spent = spend_by(gw, "key")[key_id]
    assert spent == cost * admitted
    assert spent >= budget  # the budget was reached ...
    assert spent - budget < cost * in_flight  # ... and overshot by less than what was in flight


def test_user_budgets_from_config_cover_all_of_a_users_keys(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    config = emulator_yaml(
        emu,
        """
security:
  budgets:
    users: {paula: {usd: "0.0000001", period: week}}
""",
    )
    gw = start_gateway(config, master_key=MASTER)
    _, one = new_key(gw)
    _, two = new_key(gw)
    first = httpx.post(
        f"{gw.url}/v1/chat/completions", json=BODY, headers={"Authorization": f"Bearer {one}"}
    )
    assert first.status_code == 200  # it started under budget
    second = httpx.post(
        f"{gw.url}/v1/chat/completions", json=BODY, headers={"Authorization": f"Bearer {two}"}
    )
    assert second.status_code == 402
    assert "user's budget" in second.json()["error"]["message"]


def test_spend_survives_a_restart_without_redis(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    gw = start_gateway(emulator_yaml(emu, UNLIMITED), master_key=MASTER)
    cost = cost_of_one_request(gw)
    _, headers = budgeted_key(gw, cost * 2, "total")
    for _ in range(2):
        assert (
            httpx.post(f"{gw.url}/v1/chat/completions", json=BODY, headers=headers).status_code
            == 200
        )
    gw.stop()  # flushes the usage records
    again = start_gateway(emulator_yaml(emu, UNLIMITED), master_key=MASTER)  # same data directory
    resp = httpx.post(f"{again.url}/v1/chat/completions", json=BODY, headers=headers)
    assert resp.status_code == 402


def test_a_fanout_is_charged_for_every_model_it_called(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    gw = start_gateway(emulator_yaml(emu, UNLIMITED), master_key=MASTER)
    cost = cost_of_one_request(gw)
    key_id, headers = budgeted_key(gw, cost * 3, "day")
    both = {**BODY, "models": ["fast", "openai/gpt-4o-mini"]}  # the same upstream model twice
    assert httpx.post(f"{gw.url}/v1/chat/completions", json=both, headers=headers).is_success
    assert spend_by(gw, "key")[key_id] == cost * 2
    assert httpx.post(f"{gw.url}/v1/chat/completions", json=both, headers=headers).is_success
    refused = httpx.post(f"{gw.url}/v1/chat/completions", json=both, headers=headers)
    assert refused.status_code == 402  # 4 x cost spent: over the budget of 3
    assert spend_by(gw, "key")[key_id] == cost * 4


def test_a_stream_is_charged_when_it_ends(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    gw = start_gateway(emulator_yaml(emu, UNLIMITED), master_key=MASTER)
    cost = cost_of_one_request(gw)
    key_id, headers = budgeted_key(gw, cost, "day")
    # The client does not ask for usage: the gateway still reads it, and charges it.
    with httpx.stream(
        "POST", f"{gw.url}/v1/chat/completions", json={**BODY, "stream": True}, headers=headers
    ) as resp:
        assert resp.status_code == 200
        events = [line for line in resp.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert all('"usage"' not in e for e in events)
    assert spend_by(gw, "key")[key_id] == cost  # the streamed answer cost what the JSON one did
    after = httpx.post(f"{gw.url}/v1/chat/completions", json=BODY, headers=headers)
    assert after.status_code == 402
