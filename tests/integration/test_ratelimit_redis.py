"""Rate limits and spend counters shared by gateway instances through a real Redis (REDIS_URL;
skipped when unreachable, except under CI=true where that fails). Each "instance" is its own
client and limiter; every test uses a fresh key prefix and deletes its keys afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot
from structlog.testing import capture_logs

from ai_gateway.security.budget import RedisSpendCounter, SpendUnavailableError
from ai_gateway.security.ratelimit import (
    LimiterUnavailableError,
    LocalRateLimiter,
    Rate,
)
from ai_gateway.security.ratelimit_redis import RedisRateLimiter
from ai_gateway.stores.redis import create_redis, probe_redis

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
Mode = Literal["fail_open", "fail_closed"]


def unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: required)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Instances:
    """Gateway "instances" sharing one key prefix: each `limiter()` / `counter()` gets its own
    client. Their keys are deleted afterwards."""

    def __init__(self) -> None:
        self.prefix = f"test-rl-{uuid.uuid4().hex}"
        self.clients: list[Redis] = []

    def client(self, url: str = REDIS_URL) -> Redis:
        client = create_redis(url)
        self.clients.append(client)
        return client

    def limiter(
        self, url: str = REDIS_URL, mode: Mode = "fail_closed", **options: Any
    ) -> RedisRateLimiter:
        return RedisRateLimiter(self.client(url), self.prefix, mode, LocalRateLimiter(), **options)

    def counter(self, url: str = REDIS_URL) -> RedisSpendCounter:
        return RedisSpendCounter(self.client(url), self.prefix)

    async def cleanup(self) -> None:
        admin = create_redis(REDIS_URL)
        try:
            keys = [key async for key in admin.scan_iter(match=self.prefix + ":*")]
            if keys:
                await admin.delete(*keys)
        finally:
            await admin.aclose()
            for client in self.clients:
                await client.aclose()


@pytest.fixture
async def instances() -> AsyncIterator[Instances]:
    probe = create_redis(REDIS_URL)
    result = await probe_redis(probe)
    await probe.aclose()
    if not result.ok:
        unavailable(f"Redis at REDIS_URL is {result.detail}")
    made = Instances()
    yield made
    await made.cleanup()


async def test_two_instances_admit_burst_plus_rate_times_t(instances: Instances) -> None:
    """The cross-instance exactness property: two instances asking at 5x the rate for 3 s
    admit what one limiter would, not twice that."""
    rate = Rate(rps=20.0, burst=5)
    limiters = [instances.limiter(op_timeout_s=2.0), instances.limiter(op_timeout_s=2.0)]
    admitted = [0, 0]
    first_ask = last_answer = time.monotonic()
    deadline = first_ask + 3.0

    async def worker(which: int) -> None:
        nonlocal last_answer
        while time.monotonic() < deadline:
            allowed = (await limiters[which].hit("user:alice", rate)).allowed
            last_answer = time.monotonic()
            admitted[which] += allowed
            await asyncio.sleep(0.04)  # 25/s per worker, 4 workers: 100/s for a 20/s limit

    await asyncio.gather(*(worker(i % 2) for i in range(4)))
    span = last_answer - first_ask  # Redis saw every request within this span
    total = sum(admitted)
    assert total <= rate.burst + math.floor(rate.rps * span), (admitted, span)
    assert total >= rate.burst + rate.rps * span - 2, (admitted, span)
    assert min(admitted) > 0, "both instances drew from the same bucket"
    assert not any(limiter.degraded for limiter in limiters)


async def test_decisions_keys_hash_tags_and_expiry(instances: Instances) -> None:
    limiter = instances.limiter()
    rate = Rate(rps=1.0, burst=2)
    first = await limiter.hit("team:core", rate)
    assert (first.allowed, first.limit, first.remaining) == (True, 2, 1)
    assert first.reset_s == pytest.approx(1.0, abs=0.01)
    assert (await limiter.hit("team:core", rate)).remaining == 0
    refused = await limiter.hit("team:core", rate)
    assert (refused.allowed, refused.remaining) == (False, 0)
    assert 0.9 < refused.retry_after_s <= 1.0
    assert refused.reset_s == pytest.approx(2.0, abs=0.1)

    await limiter.charge_tokens("team:core", 600, 10)
    await limiter.acquire("team:core", 3, "lease-1", 30.0)
    keys = [limiter.redis_key("team:core", kind) for kind in ("rps", "tpm", "conc")]
    assert keys[0] == f"{instances.prefix}:{{team:core}}:rps"
    assert len({key_slot(key.encode()) for key in keys}) == 1, "one slot per limited key"
    assert key_slot(keys[0].encode()) != key_slot(limiter.redis_key("team:b", "rps").encode())
    client = instances.clients[0]
    ttls = [await client.pttl(key) for key in keys]
    assert 0 < ttls[0] <= 2000  # fully replenished in 2 s: gone then
    assert 0 < ttls[1] <= 1000  # 10 tokens at 10 per second
    assert 29_000 < ttls[2] <= 30_000  # the lease's ttl

    fast = Rate(rps=50.0, burst=1)
    await limiter.hit("idle", fast)
    await asyncio.sleep(0.1)
    assert not await client.exists(limiter.redis_key("idle", "rps")), "an idle key vanishes"
    assert (await limiter.check_tokens("never-charged", 60)).remaining == 60
    assert not await client.exists(limiter.redis_key("never-charged", "tpm")), (
        "checks write nothing"
    )


async def test_token_bucket_is_shared(instances: Instances) -> None:
    a, b = instances.limiter(), instances.limiter()
    assert (await a.charge_tokens("key:k_1", 600, 60)).remaining == 540
    assert (await b.check_tokens("key:k_1", 600)).remaining in (540, 541)
    charged = await b.charge_tokens("key:k_1", 600, 840)  # 540 - 840: 300 in debt
    assert not charged.allowed
    refused = await a.check_tokens("key:k_1", 600)
    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(30.0, abs=0.1)
    assert refused.reset_s == pytest.approx(90.0, abs=0.1)
    assert 89_000 < await instances.clients[0].pttl(a.redis_key("key:k_1", "tpm")) <= 90_000


async def test_leases_are_shared_and_expire(instances: Instances) -> None:
    a, b = instances.limiter(), instances.limiter()
    assert (await a.acquire("model:gpt-4o", 2, "l1", 30.0)).remaining == 1
    assert (await b.acquire("model:gpt-4o", 2, "l2", 30.0)).remaining == 0
    refused = await a.acquire("model:gpt-4o", 2, "l3", 30.0)
    assert not refused.allowed
    assert refused.retry_after_s == 1.0
    await b.release("model:gpt-4o", "l1")  # any instance may release
    assert (await a.acquire("model:gpt-4o", 2, "l3", 30.0)).allowed
    assert (await b.acquire("model:gpt-4o", 2, "l2", 30.0)).allowed, "renewal"

    # a crashed instance's leases expire after their ttl
    assert (await a.acquire("crash", 2, "c1", 0.2)).allowed
    assert (await a.acquire("crash", 2, "c2", 30.0)).allowed
    refused = await b.acquire("crash", 2, "c3", 30.0)
    assert not refused.allowed
    assert 0 < refused.retry_after_s <= 0.2  # when c1 expires
    assert refused.reset_s == pytest.approx(30.0, abs=0.1)  # when c2 expires
    await asyncio.sleep(0.25)  # c1 expired; the set (holding c2) did not
    renewed = await b.acquire("crash", 2, "c3", 30.0)
    assert (renewed.allowed, renewed.remaining) == (True, 0)
    assert renewed.reset_s == pytest.approx(30.0, abs=0.1)
    assert not (await a.acquire("crash", 2, "c4", 30.0)).allowed


async def test_spend_is_shared_and_exact(instances: Instances) -> None:
    counters = [instances.counter(), instances.counter()]
    rng = random.Random(5)
    costs = [Decimal(rng.randrange(1, 10**16)).scaleb(-12) for _ in range(400)]
    gate = asyncio.Semaphore(40)  # concurrent, within the clients' pools of 100 connections

    async def add(i: int, cost: Decimal) -> None:
        async with gate:
            await counters[i % 2].add("team:core", "month", cost)

    await asyncio.gather(*(add(i, cost) for i, cost in enumerate(costs)))
    exact = sum(costs, Decimal(0))
    assert exact > Decimal(2**53) / 10**12, "beyond what a double holds exactly"
    assert await counters[0].spent("team:core", "month") == exact
    assert await counters[1].spent("team:core", "month") == exact

    now = datetime.now(UTC)
    key, expire_at = counters[0].redis_key("team:core", "month", now=now)
    assert key.startswith(f"{instances.prefix}:{{team:core}}:month:{now:%Y%m}01")
    assert expire_at is not None
    assert await instances.clients[0].expiretime(key) == expire_at
    total_key, no_expiry = counters[0].redis_key("team:core", "total")
    assert no_expiry is None
    await counters[0].add("team:core", "total", Decimal("0.5"))
    assert await instances.clients[0].ttl(total_key) == -1


async def test_seed_sets_only_a_missing_counter(instances: Instances) -> None:
    a, b = instances.counter(), instances.counter()
    assert await a.seed("user:bob", "day", Decimal("3.25"))
    assert not await b.seed("user:bob", "day", Decimal("100"))
    assert await b.add("user:bob", "day", Decimal("0.000000000001")) == Decimal("3.250000000001")
    key, _ = a.redis_key("user:bob", "day")
    assert await instances.clients[0].ttl(key) > 86_400


async def test_fail_open_answers_from_local_limits(instances: Instances) -> None:
    url = f"redis://:s3cret-pw@127.0.0.1:{free_port()}/0"  # nothing listens there
    limiter = instances.limiter(url, "fail_open", retry_interval_s=0.0)
    rate = Rate(rps=1.0, burst=2)
    with capture_logs() as logs:
        decisions = [await limiter.hit("user:alice", rate) for _ in range(3)]
        assert [d.allowed for d in decisions] == [True, True, False]
        assert not (await limiter.charge_tokens("user:alice", 60, 120)).allowed
        assert (await limiter.acquire("user:alice", 1, "l1", 5.0)).allowed
        assert not (await limiter.acquire("user:alice", 1, "l2", 5.0)).allowed
        await limiter.release("user:alice", "l1")  # frees the local lease
        assert (await limiter.acquire("user:alice", 1, "l2", 5.0)).allowed
    result = limiter.readiness()
    assert not result.ok
    assert result.detail == "redis unreachable: local limits (fail_open)"
    events = [entry["event"] for entry in logs]
    assert events.count("ratelimit_redis_unavailable") == 1, "one warning per 10 s"
    assert "s3cret-pw" not in repr(logs) + result.detail


async def test_fail_closed_raises(instances: Instances) -> None:
    limiter = instances.limiter(f"redis://127.0.0.1:{free_port()}/0", "fail_closed")
    with pytest.raises(LimiterUnavailableError):
        await limiter.hit("k", Rate(1.0, 1))
    with pytest.raises(LimiterUnavailableError):
        await limiter.check_tokens("k", 60)
    with pytest.raises(LimiterUnavailableError):
        await limiter.charge_tokens("k", 60, 1)
    with pytest.raises(LimiterUnavailableError):
        await limiter.acquire("k", 1, "l1", 1.0)
    await limiter.release("k", "l1")  # never raises: the lease expires in Redis
    assert limiter.readiness().detail.endswith("(fail_closed)")
    counter = instances.counter(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(SpendUnavailableError):
        await counter.add("k", "day", Decimal(1))
    with pytest.raises(SpendUnavailableError):
        await counter.spent("k", "day")
    with pytest.raises(SpendUnavailableError):
        await counter.seed("k", "day", Decimal(1))


class Proxy:
    """A TCP proxy in front of REDIS_URL's server, stopped and started to stage an outage."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = free_port()
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.close()
        finally:
            writer.close()
            self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def test_degraded_then_recovers(instances: Instances) -> None:
    parts = urlsplit(REDIS_URL)
    if parts.scheme != "redis" or parts.hostname is None:
        pytest.skip("the outage test proxies a redis:// URL")
    proxy = Proxy(parts.hostname or "", parts.port or 6379)
    auth = parts.netloc.rpartition("@")[0]
    url = f"redis://{auth + '@' if auth else ''}127.0.0.1:{proxy.port}{parts.path}"
    limiter = instances.limiter(url, "fail_open", retry_interval_s=0.5)
    rate = Rate(rps=100.0, burst=100)
    await proxy.start()
    try:
        with capture_logs() as logs:
            assert (await limiter.hit("k", rate)).allowed
            assert limiter.readiness().ok
            await proxy.stop()
            assert (await limiter.hit("k", rate)).allowed  # from the fallback
            assert limiter.degraded
            await proxy.start()
            accepted, started = proxy.accepted, time.monotonic()
            for _ in range(20):  # within the retry interval: Redis is not even tried
                assert (await limiter.hit("k", rate)).allowed
            assert time.monotonic() - started < 0.5, "precondition: still within the interval"
            assert proxy.accepted == accepted
            assert limiter.degraded
            await asyncio.sleep(0.55)
            assert (await limiter.hit("k", rate)).allowed
            assert proxy.accepted == accepted + 1, "back on Redis"
            assert limiter.readiness().ok
            assert limiter.readiness().detail == "shared via redis"
        events = [entry["event"] for entry in logs]
        assert events.count("ratelimit_redis_unavailable") == 1
        assert events.count("ratelimit_redis_recovered") == 1
    finally:
        await proxy.stop()
