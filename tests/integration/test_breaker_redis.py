"""Circuit breakers of several gateway instances sharing state through a real Redis."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from ai_gateway.observability.health import CheckResult
from ai_gateway.routing.breaker import BreakerState, CircuitBreaker
from ai_gateway.routing.breaker_redis import RedisBreakerStore
from ai_gateway.routing.config import BreakerConfig
from ai_gateway.stores.redis import create_redis, probe_redis, redis_readiness_check
from harness import free_port

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
CONFIG = BreakerConfig(failures=3, window_s=60.0, cooldown_s=30.0)
SHORT = BreakerConfig(failures=2, window_s=60.0, cooldown_s=0.3)
DEP = "fast/0"
FAST_RETRY = (0.02, 0.1)  # subscriber backoff: the tests wait for recovery, keep it short

StartBreaker = Callable[..., Awaitable[CircuitBreaker]]


def unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: required)")
    pytest.skip(reason)


async def eventually(predicate: Callable[[], bool], timeout_s: float = 1.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


@pytest.fixture
async def redis_url() -> str:
    client = create_redis(REDIS_URL)
    result = await probe_redis(client)
    await client.aclose()
    if not result.ok:
        unavailable(f"Redis at REDIS_URL is {result.detail}")
    return REDIS_URL


@pytest.fixture
async def start_breaker() -> AsyncIterator[StartBreaker]:
    """Start "gateway instances": each its own client and store, all with one fresh prefix.
    Their keys are deleted afterwards from every Redis that is still up."""
    prefix = f"test-breaker-{uuid.uuid4().hex}"
    started: list[tuple[CircuitBreaker, Redis]] = []

    async def start(url: str, config: BreakerConfig = CONFIG) -> CircuitBreaker:
        client = create_redis(url)
        store = RedisBreakerStore(client, prefix=prefix, backoff_s=FAST_RETRY)
        breaker = CircuitBreaker(config, shared=store)
        started.append((breaker, client))
        await breaker.start()
        return breaker

    yield start
    for breaker, client in started:
        await breaker.aclose()
        if (await probe_redis(client)).ok:
            keys = [key async for key in client.scan_iter(match="{" + prefix + "}:*")]
            if keys:
                await client.delete(*keys)
        await client.aclose()


async def test_failures_split_across_instances_open_the_circuit_on_both(
    redis_url: str, start_breaker: StartBreaker
) -> None:
    a = await start_breaker(redis_url)
    b = await start_breaker(redis_url)
    assert a.readiness().ok
    assert a.readiness().detail == "shared via redis"
    await a.record_failure(DEP)
    await a.record_failure(DEP)
    assert a.allows(DEP)
    assert b.allows(DEP)
    await b.record_failure(DEP)  # the third failure in the shared window
    assert not b.allows(DEP)
    assert await eventually(lambda: not a.allows(DEP)), "the other instance follows the trip"
    late = await start_breaker(redis_url)  # an instance that starts after the trip knows it
    assert not late.allows(DEP)
    assert late.state(DEP) is BreakerState.OPEN
    assert late.allows("fast/1")


async def test_probe_success_on_one_instance_closes_the_other(
    redis_url: str, start_breaker: StartBreaker
) -> None:
    a = await start_breaker(redis_url, SHORT)
    b = await start_breaker(redis_url, SHORT)
    await a.record_failure(DEP)
    await a.record_failure(DEP)
    assert await eventually(lambda: b.state(DEP) is not BreakerState.CLOSED)
    assert await eventually(lambda: a.allows(DEP), timeout_s=2.0)  # a's probe
    await a.record_success(DEP)
    assert a.state(DEP) is BreakerState.CLOSED
    # b never sent a probe: only the shared close can close it
    assert await eventually(lambda: b.state(DEP) is BreakerState.CLOSED)
    late = await start_breaker(redis_url, SHORT)
    assert late.state(DEP) is BreakerState.CLOSED


async def test_probe_failure_on_one_instance_reopens_the_other(
    redis_url: str, start_breaker: StartBreaker
) -> None:
    a = await start_breaker(redis_url, SHORT)
    b = await start_breaker(redis_url, SHORT)
    await a.record_failure(DEP)
    await a.record_failure(DEP)
    assert await eventually(lambda: b.state(DEP) is BreakerState.HALF_OPEN, timeout_s=2.0)
    # Each instance times the cooldown from when it saw the circuit open: a loaded machine can
    # put a few milliseconds between them.
    assert await eventually(lambda: a.state(DEP) is BreakerState.HALF_OPEN, timeout_s=2.0)
    assert a.allows(DEP)  # a's probe
    await a.record_failure(DEP, retry_after_s=30.0)
    assert await eventually(lambda: b.state(DEP) is BreakerState.OPEN)
    assert not b.allows(DEP)
    late = await start_breaker(redis_url, SHORT)
    assert late.state(DEP) is BreakerState.OPEN


async def test_an_idle_link_is_not_mistaken_for_an_outage(redis_url: str) -> None:
    """The subscriber PINGs an idle pub/sub link and declares it dead after three unanswered
    intervals; the replies must count, or every quiet period would flap to local state."""
    client = create_redis(redis_url)
    store = RedisBreakerStore(client, prefix=f"test-idle-{uuid.uuid4().hex}", ping_interval_s=0.05)
    breaker = CircuitBreaker(CONFIG, shared=store)
    try:
        with capture_logs() as logs:
            await breaker.start()
            await asyncio.sleep(0.6)  # twelve ping intervals without a single event
            assert breaker.readiness().ok
        assert "breaker_redis_unavailable" not in [entry["event"] for entry in logs]
    finally:
        await breaker.aclose()
        await client.aclose()


async def test_unreachable_redis_falls_back_to_local_state() -> None:
    # nothing listens there; the password must not leak into readiness or logs
    client = create_redis(f"redis://:s3cret-pw@127.0.0.1:{free_port()}/0")
    store = RedisBreakerStore(client, prefix="unreachable", backoff_s=FAST_RETRY)
    breaker = CircuitBreaker(CONFIG, shared=store)
    try:
        with capture_logs() as logs:
            await breaker.start()
            result = breaker.readiness()
            assert not result.ok
            assert "redis unreachable since" in result.detail
            assert "using local state" in result.detail
            assert (await breaker.readiness_check().probe()) == result
            for _ in range(CONFIG.failures):
                await breaker.record_failure(DEP)
            assert not breaker.allows(DEP)
            await breaker.record_success(DEP)
            assert breaker.allows("fast/1")
            await asyncio.sleep(0.3)  # the subscriber keeps retrying meanwhile
        events = [entry["event"] for entry in logs]
        assert events.count("breaker_redis_unavailable") == 1
        assert "breaker_redis_recovered" not in events
        assert "s3cret-pw" not in repr(logs) + result.detail
        probe = await probe_redis(client)
        assert probe == CheckResult(False, "unreachable: ConnectionError")
        check = redis_readiness_check(client)
        assert not check.required
        assert await check.probe() == probe
    finally:
        await breaker.aclose()
        await client.aclose()


class RedisServer:
    """A throwaway redis-server (no persistence) on a fixed free port, stopped and restarted
    by the test to stage an outage."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"]
        self._proc = subprocess.Popen(
            [*args, "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL
        )
        client = create_redis(self.url)
        try:
            for _ in range(200):
                if (await probe_redis(client, timeout_s=0.2)).ok:
                    return
                await asyncio.sleep(0.025)
            raise AssertionError("redis-server did not start")
        finally:
            await client.aclose()

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            self._proc = None


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    if not os.path.exists(REDIS_SERVER):
        unavailable("redis-server is not installed")
    server = RedisServer()
    yield server
    server.stop()


async def test_outage_and_recovery(redis_server: RedisServer, start_breaker: StartBreaker) -> None:
    await redis_server.start()
    with capture_logs() as logs:
        a = await start_breaker(redis_server.url)
        b = await start_breaker(redis_server.url)
        assert a.readiness().ok

        redis_server.stop()
        for _ in range(CONFIG.failures):  # no exception, and the local breaker still trips
            await a.record_failure(DEP)
        assert not a.allows(DEP)
        assert b.allows(DEP), "nothing could be shared during the outage"
        assert await eventually(lambda: not b.readiness().ok, timeout_s=3.0)
        assert "using local state" in a.readiness().detail

        await redis_server.start()
        assert await eventually(lambda: a.readiness().ok and b.readiness().ok, timeout_s=5.0)
        for _ in range(CONFIG.failures):
            await b.record_failure("fast/1")
        assert await eventually(lambda: not a.allows("fast/1")), "sharing works again"
    events = [entry["event"] for entry in logs]
    assert events.count("breaker_redis_unavailable") == 2  # once per instance
    assert events.count("breaker_redis_recovered") == 2
