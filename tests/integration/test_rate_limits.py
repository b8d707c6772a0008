"""Rate limits through the gateway: 10 requests/s per user held across two instances sharing
Redis, other users unaffected, the 429's headers, token and concurrency limits, and what happens
when Redis goes away (fail_open: local limits, shown by /health/ready; fail_closed: 503)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest

from conftest import GatewayFactory, emulator_yaml
from harness import EmulatorServer, GatewayServer

pytestmark = pytest.mark.integration

MASTER = "sk-master-ratelimit-7c2e"
SECRET = "jwt-secret-for-rate-limit-tests-0f9d"
CONFIG = f"""
security:
  jwt: {{secret: {SECRET}}}
"""


def bearer(user: str) -> dict[str, str]:
    claims = {"sub": user, "exp": int(time.time()) + 600}
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}


BODY = {"model": "fast", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


@dataclass
class Run:
    statuses: Counter[int] = field(default_factory=Counter)
    first_sent: float = 0.0
    last_sent: float = 0.0

    @property
    def span_s(self) -> float:
        """From the first request sent to the last: what the limit is measured over."""
        return self.last_sent - self.first_sent


async def load(targets: list[tuple[str, dict[str, str]]], rate: float, seconds: float) -> Run:
    """Send `rate` requests/s for `seconds`, round-robin over (gateway url, headers) targets, each
    at its scheduled time (not waiting for earlier answers). Status codes counted."""
    run = Run()
    async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=100)) as client:

        async def one(url: str, headers: dict[str, str]) -> None:
            resp = await client.post(f"{url}/v1/chat/completions", json=BODY, headers=headers)
            run.statuses[resp.status_code] += 1

        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks = []
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
            url, headers = targets[i % len(targets)]
            tasks.append(asyncio.create_task(one(url, headers)))
            run.last_sent = loop.time() - start
        await asyncio.gather(*tasks)
    return run


async def test_two_instances_sharing_redis_admit_ten_per_second_in_total(
    start_gateway: GatewayFactory, emu: EmulatorServer, redis_prefix: str
) -> None:
    a = start_gateway(emulator_yaml(emu, CONFIG), master_key=MASTER)
    b = start_gateway(emulator_yaml(emu, CONFIG), master_key=MASTER)
    # Several clients of one user (separate tokens), spread over both instances.
    carol = [bearer("carol"), bearer("carol"), bearer("carol")]
    targets = [(gw.url, h) for h in carol for gw in (a, b)]
    other = [(a.url, bearer("dave")), (b.url, bearer("dave"))]
    carol_run, dave_run = await asyncio.gather(
        load(targets, rate=50, seconds=10), load(other, rate=4, seconds=10)
    )
    admitted = carol_run.statuses[200]
    # The burst (5), then 10/s over the ~10 s the requests were sent (a slow machine may
    # stretch it a little): within 10% of 10/s together, nowhere near 2 x 10/s.
    rate = (admitted - 5) / carol_run.span_s
    assert 9.0 <= rate <= 11.0, (carol_run.statuses, carol_run.span_s)
    assert carol_run.statuses[429] == 500 - admitted
    assert set(carol_run.statuses) == {200, 429}
    assert dave_run.statuses == Counter({200: 40})  # another user is unaffected


def test_the_429_says_when_to_retry(start_gateway: GatewayFactory, emu: EmulatorServer) -> None:
    gw = start_gateway(emulator_yaml(emu, CONFIG), master_key=MASTER)
    headers = bearer("erin")
    seen: list[httpx.Response] = []
    with httpx.Client(base_url=gw.url, headers=headers) as client:
        for _ in range(40):  # faster than 10/s: the burst, then refusals
            seen.append(client.post("/v1/chat/completions", json=BODY))
    assert [r.status_code for r in seen[:5]] == [200] * 5  # the burst
    assert seen[0].headers["x-ratelimit-limit-requests"] == "5"
    assert seen[0].headers["x-ratelimit-remaining-requests"] == "4"
    refused = next(r for r in seen if r.status_code == 429)
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_error"
    assert error["code"] == "rate_limit_exceeded"
    assert "10 requests per second" in error["message"]
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"].endswith("s")
    metrics = httpx.get(f"{gw.url}/metrics").text
    assert 'ai_gateway_rate_limit_decisions_total{kind="rps",outcome="refused",scope="user"}' in (
        metrics
    )
    # The master key is the operator's: no per-user limit.
    master = {"Authorization": f"Bearer {MASTER}"}
    statuses = {
        httpx.post(f"{gw.url}/v1/chat/completions", json=BODY, headers=master).status_code
        for _ in range(20)
    }
    assert statuses == {200}


def test_token_and_concurrency_limits_per_key(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    gw = start_gateway(emulator_yaml(emu, CONFIG), master_key=MASTER)
    admin = {"Authorization": f"Bearer {MASTER}"}
    created = httpx.post(
        f"{gw.url}/admin/keys", json={"user": "frank", "tpm": 30}, headers=admin
    ).json()
    key = {"Authorization": f"Bearer {created['key']}"}
    first = httpx.post(f"{gw.url}/v1/chat/completions", json=BODY, headers=key)
    assert first.status_code == 200
    used = first.json()["usage"]["total_tokens"]
    assert used > 0
    replies = [
        httpx.post(f"{gw.url}/v1/chat/completions", json=BODY, headers=key)
        for _ in range(30 // used + 2)
    ]
    statuses = [first.status_code] + [r.status_code for r in replies]
    admitted = statuses.count(200)
    # Admitted while the minute's bucket is not in debt: the last one may overdraw it.
    assert (admitted - 1) * used < 30 + 1
    assert statuses == [200] * admitted + [429] * (len(statuses) - admitted)
    refused = replies[-1]
    assert refused.headers["x-ratelimit-limit-tokens"] == "30"
    assert int(refused.headers["retry-after"]) >= 1
    assert "30 tokens per minute" in refused.json()["error"]["message"]

    slow = httpx.post(
        f"{gw.url}/admin/keys", json={"user": "gina", "max_concurrent": 2}, headers=admin
    ).json()
    emu.add_faults({"kind": "delay", "seconds": 1.0, "count": 3})
    slow_key = {"Authorization": f"Bearer {slow['key']}"}

    async def three_at_once() -> list[int]:
        async with httpx.AsyncClient(timeout=10) as client:
            replies = await asyncio.gather(
                *[
                    client.post(f"{gw.url}/v1/chat/completions", json=BODY, headers=slow_key)
                    for _ in range(3)
                ]
            )
        return sorted(r.status_code for r in replies)

    assert asyncio.run(three_at_once()) == [200, 200, 429]
    # The leases were released: two more at once are fine.
    after = [
        httpx.post(f"{gw.url}/v1/chat/completions", json=BODY, headers=slow_key).status_code
        for _ in range(2)
    ]
    assert after == [200, 200]


def readiness(gw: GatewayServer) -> dict[str, Any]:
    checks: dict[str, Any] = httpx.get(f"{gw.url}/health/ready").json()["checks"]
    return checks


def test_redis_unreachable_fail_open_limits_locally(
    start_gateway: GatewayFactory, emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    gw = start_gateway(emulator_yaml(emu, CONFIG), master_key=MASTER)
    with httpx.Client(base_url=gw.url, headers=bearer("hank")) as client:
        statuses = [client.post("/v1/chat/completions", json=BODY).status_code for _ in range(40)]
    assert statuses.count(200) >= 5  # served, with this instance's own limits
    assert 429 in statuses
    assert readiness(gw)["rate_limits"]["detail"] == "redis unreachable: local limits (fail_open)"


def test_redis_unreachable_fail_closed_refuses_with_503(
    start_gateway: GatewayFactory, emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    config = CONFIG + "  rate_limits: {redis_failure: fail_closed}\n"
    gw = start_gateway(emulator_yaml(emu, config), master_key=MASTER)
    resp = httpx.post(f"{gw.url}/v1/chat/completions", json=BODY, headers=bearer("ivy"))
    assert resp.status_code == 503
    assert "fail closed" in resp.json()["error"]["message"]
    master = {"Authorization": f"Bearer {MASTER}"}
    ok = httpx.post(f"{gw.url}/v1/chat/completions", json=BODY, headers=master)
    assert ok.status_code == 200  # no limit applies to the operator: nothing to check
