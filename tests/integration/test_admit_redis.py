"""One Redis round trip for a request's limits and budgets (security/admit_redis.py), against a
real Redis (REDIS_URL; skipped when unreachable, except under CI=true): all or nothing across
scopes, checks of one key seeing each other, exact budget comparisons beyond what a double
holds, the settlement script, the NOSCRIPT fallback, and Redis down in both failure modes.
Each "instance" is its own client; every test uses a fresh key prefix, deleted afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any, Literal

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from ai_gateway.security import admit_redis
from ai_gateway.security.admit_redis import (
    LeaseCheck,
    RateCheck,
    RedisAdmitter,
    SpendCheck,
    TokenCheck,
    Verdict,
)
from ai_gateway.security.budget import Period, RedisSpendCounter, from_pico
from ai_gateway.security.ratelimit import Decision, LocalRateLimiter, Rate
from ai_gateway.security.ratelimit_redis import RedisRateLimiter
from ai_gateway.stores.redis import create_redis, probe_redis
from ai_gateway.stores.redis_pipe import RedisPipe

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
Mode = Literal["fail_open", "fail_closed"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Instances:
    def __init__(self) -> None:
        self.prefix = f"test-admit-{uuid.uuid4().hex}"
        self.clients: list[Redis] = []
        self.admitters: list[RedisAdmitter] = []

    def admitter(self, url: str = REDIS_URL, mode: Mode = "fail_closed") -> RedisAdmitter:
        client = create_redis(url)
        self.clients.append(client)
        limiter = RedisRateLimiter(client, f"{self.prefix}:rl", mode, LocalRateLimiter())
        spend = RedisSpendCounter(client, f"{self.prefix}:spend")
        made = RedisAdmitter(RedisPipe(url), limiter, spend)
        self.admitters.append(made)
        return made

    def spend_key(self, scope_key: str, period: Period = "day") -> str:
        """The Redis key of `scope_key`'s spend in the current `period`."""
        return RedisSpendCounter(self.clients[0], f"{self.prefix}:spend").redis_key(
            scope_key, period
        )[0]

    async def cleanup(self) -> None:
        admin = create_redis(REDIS_URL)
        try:
            keys = [key async for key in admin.scan_iter(match=self.prefix + ":*")]
            if keys:
                await admin.delete(*keys)
        finally:
            await admin.aclose()
            for admitter in self.admitters:
                await admitter.aclose()
            for client in self.clients:
                await client.aclose()


@pytest.fixture
async def instances() -> AsyncIterator[Instances]:
    probe = create_redis(REDIS_URL)
    result = await probe_redis(probe)
    await probe.aclose()
    if not result.ok:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis at REDIS_URL is {result.detail} (CI=true: required)")
        pytest.skip(f"Redis at REDIS_URL is {result.detail}")
    made = Instances()
    yield made
    await made.cleanup()


def answered(verdict: Verdict | None) -> Verdict:
    assert verdict is not None, "Redis answered"
    return verdict


async def settle(gate: RedisAdmitter, *parts: Any) -> list[Decimal] | None:
    answer = gate.settle(*parts)
    assert answer is not None, "sent"
    return await answer


def decision(value: Decision | Decimal) -> Decision:
    assert isinstance(value, Decision)
    return value


async def test_a_refusal_by_one_scope_consumes_none_of_the_others(instances: Instances) -> None:
    gate = instances.admitter()
    redis = instances.clients[0]
    user = [RateCheck("user:u", Rate(1.0, 5)), LeaseCheck("user:u", 10, "", 60.0)]

    def request(n: int) -> list[Any]:
        return [
            user[0],
            user[1]._replace(lease_id=f"lease-{n}"),
            TokenCheck("key:k", 600),
            RateCheck("team:t", Rate(0.01, 1)),  # one request, then refusals for 100 s
        ]

    first = await gate.admit(request(1))
    assert answered(first).refused is None
    assert decision(first.decisions[0]).remaining == 4
    assert decision(first.decisions[1]).remaining == 9
    user_tat = await redis.get(gate.limiter.redis_key("user:u", "rps"))
    for n in range(2, 6):
        refused = await gate.admit(request(n))
        assert answered(refused).refused == 3, "the team's rate refuses"
        team = decision(refused.decisions[3])
        assert (team.allowed, team.remaining) == (False, 0)
        assert 99.0 < team.retry_after_s <= 100.0
    # Nothing of the refused requests was taken: the user's rate and leases are as the first
    # request left them (its TAT unchanged; one lease).
    assert await redis.get(gate.limiter.redis_key("user:u", "rps")) == user_tat
    assert await redis.zrange(gate.limiter.redis_key("user:u", "conc"), 0, -1) == ["lease-1"]
    # A budget refusing last takes nothing either.
    spend_key = instances.spend_key("key:k")
    await redis.set(spend_key, 5 * 10**12)
    over = [
        user[0],
        user[1]._replace(lease_id="x"),
        SpendCheck("key:k", "day", Decimal(5), Decimal(0)),
    ]
    refused = await gate.admit(over)
    assert answered(refused).refused == 2
    assert refused.decisions[2] == Decimal(5)
    assert await redis.get(gate.limiter.redis_key("user:u", "rps")) == user_tat
    assert await redis.zcard(gate.limiter.redis_key("user:u", "conc")) == 1


async def test_checks_of_one_key_see_each_other(instances: Instances) -> None:
    """A fan-out calling one model twice takes two requests and two leases from its limits,
    as two checks one after the other would; three, over its burst, take none."""
    gate = instances.admitter()
    model = [RateCheck("model:m", Rate(1.0, 2)), LeaseCheck("model:m", 2, "", 60.0)]
    twice = [model[0], model[1]._replace(lease_id="a"), model[0], model[1]._replace(lease_id="b")]
    admitted = await gate.admit(twice)
    assert answered(admitted).refused is None
    remaining = [decision(d).remaining for d in admitted.decisions]
    assert remaining == [1, 1, 0, 0]
    again = await gate.admit([model[0]])
    assert answered(again).refused == 0
    retry = decision(again.decisions[0]).retry_after_s
    assert 0.9 < retry <= 1.0

    leases = [LeaseCheck("model:n", 2, f"l{i}", 60.0) for i in range(3)]
    refused = await gate.admit(leases)
    assert answered(refused).refused == 2
    third = decision(refused.decisions[2])
    assert (third.allowed, third.retry_after_s) == (False, 1.0)
    assert await instances.clients[0].exists(gate.limiter.redis_key("model:n", "conc")) == 0


async def test_decisions_match_the_single_check_limiter(instances: Instances) -> None:
    """The combined script and the one-check scripts keep the same state the same way: each
    sees what the other took."""
    gate = instances.admitter()
    limiter = gate.limiter
    rate = Rate(2.0, 3)
    verdict = await gate.admit([RateCheck("user:v", rate)])
    assert verdict is not None
    ours = decision(verdict.decisions[0])
    theirs = await limiter.hit("user:v", rate)
    assert (ours.limit, ours.remaining, theirs.remaining) == (3, 2, 1)
    assert ours.reset_s == pytest.approx(0.5, abs=0.01)
    assert theirs.reset_s == pytest.approx(1.0, abs=0.1)  # less the time between the calls
    await limiter.charge_tokens("key:t", 60, 61)  # in debt: 1 token past a full minute
    verdict = await gate.admit([TokenCheck("key:t", 60)])
    assert answered(verdict).refused == 0
    tokens = decision(verdict.decisions[0])
    assert tokens.retry_after_s == pytest.approx(1.0, abs=0.05)
    assert tokens.reset_s == pytest.approx(61.0, abs=0.05)


async def test_budgets_compare_exactly_beyond_a_double(instances: Instances) -> None:
    gate = instances.admitter()
    redis = instances.clients[0]
    big = 2**53 + 1  # pico-dollars: not a double
    await redis.set(instances.spend_key("team:t"), big)
    at = SpendCheck("team:t", "day", from_pico(big), Decimal(0))
    above = SpendCheck("team:t", "day", from_pico(big + 1), Decimal(0))
    verdict = await gate.admit([at])
    assert answered(verdict).refused == 0
    assert verdict.decisions[0] == from_pico(big)
    verdict = await gate.admit([above])
    assert answered(verdict).refused is None
    # What this instance's requests in flight reserved counts too (the 429 case).
    held = above._replace(held=from_pico(1))
    verdict = await gate.admit([held])
    assert answered(verdict).refused == 0
    verdict = await gate.admit([above._replace(usd=from_pico(big + 2), held=from_pico(1))])
    assert answered(verdict).refused is None


async def test_settle_releases_charges_and_adds_in_one_script(instances: Instances) -> None:
    a, b = instances.admitter(), instances.admitter()
    redis = instances.clients[0]
    verdict = await a.admit([LeaseCheck("key:s", 1, "only", 60.0), TokenCheck("key:s", 600)])
    assert answered(verdict).refused is None
    blocked = await b.admit([LeaseCheck("key:s", 1, "other", 60.0)])
    assert answered(blocked).refused == 0, "the lease is shared"
    cost = from_pico(2**53 + 7)
    totals = await settle(
        b,
        [("key:s", "only")],
        [("key:s", 600, 60)],
        [("key:s", "day", cost), ("user:s", "total", cost)],
    )
    assert totals == [cost, cost]
    totals = await settle(a, [], [], [("key:s", "day", Decimal("0.000000000001"))])
    assert totals == [cost + Decimal("0.000000000001")]
    after = await a.admit([LeaseCheck("key:s", 1, "other", 60.0), TokenCheck("key:s", 600)])
    assert answered(after).refused is None, "the lease was released"
    assert decision(after.decisions[1]).remaining in (539, 540)  # 60 of 600 tokens charged
    assert await redis.ttl(instances.spend_key("key:s")) > 86_400  # the period's end + a day
    assert await redis.ttl(instances.spend_key("user:s", "total")) == -1  # never expires
    assert await redis.get(instances.spend_key("user:s", "total")) == str(2**53 + 7)


async def test_a_flushed_script_cache_falls_back_to_eval(
    instances: Instances, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EVALSHA of a script Redis does not know (restarted, or its cache flushed) is retried
    as EVAL, once; the script is then cached. A fresh comment makes the script unknown without
    flushing the shared server's cache."""
    monkeypatch.setattr(admit_redis, "_ADMIT", admit_redis._ADMIT + f"-- {uuid.uuid4()}\n")
    gate = instances.admitter()
    sha = gate._admit.sha
    assert (await instances.clients[0].script_exists(sha)) == [False]
    verdict = await gate.admit([RateCheck("user:w", Rate(1.0, 1))])
    assert answered(verdict).refused is None
    assert (await instances.clients[0].script_exists(sha)) == [True]
    assert not gate.limiter.degraded


@pytest.mark.parametrize("mode", ["fail_open", "fail_closed"])
async def test_redis_down_answers_none_at_once(instances: Instances, mode: Mode) -> None:
    """Unreachable: None (the caller applies its failure mode), the limiter degraded, and the
    next calls within the retry interval do not touch the network."""
    gate = instances.admitter(f"redis://127.0.0.1:{free_port()}/0", mode)
    assert await gate.admit([RateCheck("user:x", Rate(1.0, 1))]) is None
    assert gate.limiter.degraded
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(100):
        assert await gate.admit([RateCheck("user:x", Rate(1.0, 1))]) is None
        assert gate.settle([("user:x", "l")], [], []) is None  # not even sent
    assert loop.time() - started < 0.5
    assert not gate.limiter.readiness().ok


async def test_the_pipe_keeps_order_selects_its_database_and_reconnects(
    instances: Instances,
) -> None:
    base = REDIS_URL.rsplit("/", 1)[0]
    pipe = RedisPipe(f"{base}/3")
    admin = create_redis(f"{base}/3")
    key = f"{instances.prefix}:pipe"
    try:
        replies = await asyncio.gather(*(pipe.send("INCR", key) for _ in range(200)))
        assert replies == list(range(1, 201)), "one write, answered in order"
        assert await admin.get(key) == "200", "in database 3"
        own_id = await pipe.send("CLIENT", "ID")
        await admin.client_kill_filter(_id=own_id)

        # Commands in flight when the server closes fail; the next ones reconnect.
        for _ in range(50):
            with contextlib.suppress(RedisConnectionError):
                if await pipe.send("CLIENT", "ID") != own_id:
                    break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("the pipe did not reconnect")
        assert await pipe.send("INCR", key) == 201, "reconnected"
        with pytest.raises(ResponseError):
            await pipe.send("NOT-A-COMMAND")
        assert await pipe.send("PING") == "PONG"
    finally:
        await admin.delete(key)
        await admin.aclose()
        await pipe.aclose()
