"""The response cache across instances and when its backend fails: two gateways sharing Redis
share entries (and, with a lock time, one upstream call for identical requests in flight on
both); a Redis that does not answer is a bypass, never an error; the usage record says what the
cache did."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx
import pytest

from ai_gateway.emulator.app import EmulatorSettings
from conftest import GatewayFactory, emulator_yaml
from harness import EmulatorServer, GatewayServer

pytestmark = pytest.mark.integration

MASTER = "sk-master-cache-shared-5c0e"
ADMIN = {"Authorization": f"Bearer {MASTER}"}
BODY = {"model": "fast", "messages": [{"role": "user", "content": "shared between instances"}]}


def post(gw: GatewayServer, body: dict[str, Any] = BODY) -> httpx.Response:
    resp = httpx.post(f"{gw.url}/v1/chat/completions", json=body, headers=ADMIN, timeout=20)
    assert resp.status_code == 200, resp.text
    return resp


def upstream_calls(emu: EmulatorServer) -> int:
    stats = emu.stats()["providers"].get("openai", {}).get("gpt-4o-mini", {})
    return int(stats.get("requests", 0))


def test_two_instances_sharing_redis_share_hits(
    emu: EmulatorServer, start_gateway: GatewayFactory, redis_prefix: str
) -> None:
    config = emulator_yaml(emu, "cache: {enabled: true}")
    one, two = start_gateway(config, master_key=MASTER), start_gateway(config, master_key=MASTER)
    assert post(one).headers["x-gateway-cache"] == "miss"
    deadline = time.monotonic() + 5  # the entry is stored just after the answer
    while (status := post(two).headers["x-gateway-cache"]) != "hit":
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    assert upstream_calls(emu) == 1
    cleared = httpx.delete(f"{two.url}/admin/cache", headers=ADMIN)
    assert cleared.json()["deleted"] >= 1
    assert post(one).headers["x-gateway-cache"] == "miss"


def test_with_a_lock_time_instances_share_one_upstream_call(
    start_gateway: GatewayFactory, redis_prefix: str
) -> None:
    slow = EmulatorServer(EmulatorSettings(chunk_delay_s=0.005))
    try:
        config = emulator_yaml(slow, "cache: {enabled: true, coalesce_lock_s: 10}")
        gateways = [start_gateway(config, master_key=MASTER) for _ in range(2)]
        body = {"model": "fast", "messages": [{"role": "user", "content": "lock [[words:200]]"}]}

        async def burst() -> list[str]:
            async with httpx.AsyncClient(timeout=30, headers=ADMIN) as client:
                replies = await asyncio.gather(
                    *(
                        client.post(f"{gateways[i % 2].url}/v1/chat/completions", json=body)
                        for i in range(20)
                    )
                )
            assert {r.status_code for r in replies} == {200}
            return [r.json()["choices"][0]["message"]["content"] for r in replies]

        answers = asyncio.run(burst())
        assert len(set(answers)) == 1
        assert upstream_calls(slow) == 1
        counted = "\n".join(httpx.get(f"{gw.url}/metrics").text for gw in gateways)
        assert counted.count('ai_gateway_cache_requests_total{status="miss"} 1.0') == 1
        hits = re.findall(r'ai_gateway_cache_requests_total\{status="hit"\} (\S+)', counted)
        assert sum(float(h) for h in hits) == 19
    finally:
        slow.stop()


def test_a_cache_backend_that_does_not_answer_is_a_bypass(
    emu: EmulatorServer, start_gateway: GatewayFactory
) -> None:
    config = emulator_yaml(emu, 'cache: {enabled: true, redis_url: "redis://127.0.0.1:9/0"}')
    gw = start_gateway(config, master_key=MASTER)
    for _ in range(3):
        resp = post(gw)
        assert resp.headers["x-gateway-cache"] == "bypass"
    assert upstream_calls(emu) == 3
    metrics = httpx.get(f"{gw.url}/metrics").text
    assert 'ai_gateway_cache_errors_total{kind="store_unavailable"} 3.0' in metrics
    assert 'ai_gateway_cache_requests_total{status="bypass"} 3.0' in metrics


def test_the_usage_record_says_what_the_cache_did(
    emu: EmulatorServer, start_gateway: GatewayFactory
) -> None:
    gw = start_gateway(emulator_yaml(emu, "cache: {enabled: true}"), master_key=MASTER)
    miss, hit = post(gw), post(gw)
    rows = {}
    deadline = time.monotonic() + 10
    for resp in (miss, hit):
        request_id = resp.headers["x-gateway-request-id"]
        while True:
            found = httpx.get(
                f"{gw.url}/ai/analytics/requests",
                params={"start": "1h", "request_id": request_id},
                headers=ADMIN,
            ).json()["data"]
            if found or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        rows[resp.headers["x-gateway-cache"]] = found[0]
    assert rows["miss"]["completion_tokens"] > 0
    assert rows["miss"]["cost_usd"] is not None
    assert rows["hit"]["completion_tokens"] == 0  # nothing was generated for it
    assert rows["hit"]["cost_usd"] is None
    assert rows["hit"]["status"] == 200
    assert (rows["miss"]["cache_status"], rows["hit"]["cache_status"]) == ("miss", "hit")
    # What the hit saved: the miss's tokens and cost.
    miss_tokens = rows["miss"]["prompt_tokens"] + rows["miss"]["completion_tokens"]
    assert rows["hit"]["saved_tokens"] == miss_tokens
    assert rows["hit"]["saved_cost_usd"] == rows["miss"]["cost_usd"]
    usage = httpx.get(
        f"{gw.url}/ai/analytics/usage", params={"start": "1h", "group_by": "model"}, headers=ADMIN
    ).json()
    assert usage["totals"]["cache_hits"] == 1
    assert usage["totals"]["cache_hit_rate"] == 0.5
