"""The rpm/tpm usage windows. Behaviour tests run against both the in-process window and the
Redis one (real Redis at REDIS_URL; skipped when unreachable unless CI=true)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Connection, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import RedisError

from ai_gateway.routing.usage import (
    Bucket,
    LocalUsageWindow,
    RedisUsageWindow,
    UsageUnavailableError,
    UsageWindow,
)

T0 = 1_700_000_000.0  # a whole second; the fake clock starts here


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def redis_url() -> str:
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def make_client(**kwargs: Any) -> Redis:
    return Redis.from_url(
        redis_url(),
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=2,
        retry=Retry(NoBackoff(), 0),
        **kwargs,
    )


async def _ping_or_skip(client: Redis) -> None:
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        where = urlsplit(redis_url())  # never print the URL: it may carry a password
        reason = f"Redis unreachable at {where.hostname}:{where.port}: {type(exc).__name__}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture
async def redis_client() -> AsyncIterator[Redis]:
    client = make_client()
    await _ping_or_skip(client)
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(redis_client: Redis) -> AsyncIterator[str]:
    name = f"test:usage:{uuid.uuid4().hex}"
    yield name
    keys = [key async for key in redis_client.scan_iter(match=f"{{{name}:*")]
    if keys:
        await redis_client.delete(*keys)


WindowFactory = Callable[[FakeClock], UsageWindow]


@pytest.fixture(params=["local", "redis"])
def make_window(request: pytest.FixtureRequest) -> WindowFactory:
    if request.param == "local":
        return LocalUsageWindow
    client: Redis = request.getfixturevalue("redis_client")
    name: str = request.getfixturevalue("prefix")
    return lambda clock: RedisUsageWindow(client, name, clock=clock)


async def test_counts_requests_and_tokens_per_deployment(make_window: WindowFactory) -> None:
    window = make_window(FakeClock())
    await window.add("g/0", requests=1, tokens=100)
    await window.add("g/0", requests=1, tokens=50)
    await window.add("g/1", tokens=7)
    assert await window.current(["g/0", "g/1", "never"]) == {
        "g/0": (2, 150),
        "g/1": (0, 7),
        "never": (0, 0),
    }
    assert await window.current([]) == {}


async def test_usage_slides_out_of_the_window_after_60_seconds(make_window: WindowFactory) -> None:
    clock = FakeClock(T0 + 0.2)
    window = make_window(clock)
    await window.add("d", requests=1, tokens=100)
    clock.now = T0 + 30.7
    await window.add("d", requests=2, tokens=50)
    clock.now = T0 + 59.9
    assert await window.current(["d"]) == {"d": (3, 150)}
    clock.now = T0 + 60.0  # the second starting at T0 has left the window
    assert await window.current(["d"]) == {"d": (2, 50)}
    clock.now = T0 + 89.99
    assert await window.current(["d"]) == {"d": (2, 50)}
    clock.now = T0 + 90.0
    assert await window.current(["d"]) == {"d": (0, 0)}


async def test_buckets_say_when_each_second_leaves_the_window(make_window: WindowFactory) -> None:
    clock = FakeClock(T0 + 0.2)
    window = make_window(clock)
    await window.add("d", requests=1, tokens=10)
    clock.now = T0 + 5.9
    await window.add("d", requests=1)
    clock.now = T0 + 10.5
    found = await window.buckets(["d", "idle"])
    assert found["idle"] == []
    assert [(round(b.frees_in_s, 6), b.requests, b.tokens) for b in found["d"]] == [
        (49.5, 1, 10),
        (54.5, 1, 0),
    ]
    assert all(isinstance(b, Bucket) for b in found["d"])


async def test_negative_amounts_correct_the_count_but_never_below_zero(
    make_window: WindowFactory,
) -> None:
    window = make_window(FakeClock())
    await window.add("d", requests=1, tokens=100)
    await window.add("d", tokens=-30)  # the estimate was high: the provider reported 70
    assert await window.current(["d"]) == {"d": (1, 70)}
    await window.add("e", requests=-1, tokens=-5)
    assert await window.current(["e"]) == {"e": (0, 0)}


async def test_adding_nothing_is_a_no_op(make_window: WindowFactory) -> None:
    window = make_window(FakeClock())
    await window.add("d")
    assert await window.current(["d"]) == {"d": (0, 0)}
    assert await window.buckets(["d"]) == {"d": []}


async def test_local_window_forgets_deployments_with_no_recent_usage() -> None:
    clock = FakeClock()
    window = LocalUsageWindow(clock)
    for n in range(1000):
        await window.add(f"dep-{n}", requests=1)
    clock.now += 60
    await window.current([f"dep-{n}" for n in range(1000)])
    assert not window._deps  # memory is bounded by the deployments used in the last minute


# --- Redis only ------------------------------------------------------------------------------


async def test_two_gateway_instances_share_usage_through_redis(
    redis_client: Redis, prefix: str
) -> None:
    other_client = make_client()
    try:
        clock = FakeClock()
        first = RedisUsageWindow(redis_client, prefix, clock=clock)
        second = RedisUsageWindow(other_client, prefix, clock=clock)
        await first.add("g/0", requests=1, tokens=100)
        await second.add("g/0", requests=1, tokens=20)
        await second.add("g/1", requests=3)
        expected = {"g/0": (2, 120), "g/1": (3, 0)}
        assert await first.current(["g/0", "g/1"]) == expected
        assert await second.current(["g/0", "g/1"]) == expected
        elsewhere = RedisUsageWindow(redis_client, f"{prefix}-other", clock=clock)
        assert await elsewhere.current(["g/0"]) == {"g/0": (0, 0)}
    finally:
        await other_client.aclose()


async def test_redis_keys_are_hash_tagged_and_expire(redis_client: Redis, prefix: str) -> None:
    clock = FakeClock()
    window = RedisUsageWindow(redis_client, prefix, clock=clock)
    for step in range(3):
        clock.now = T0 + step
        await window.add("group/0", requests=1, tokens=5)
    keys = sorted([key async for key in redis_client.scan_iter(match=f"{{{prefix}:*")])
    assert keys == [f"{{{prefix}:group/0}}:{int(T0) + step}" for step in range(3)]
    assert len({key_slot(key.encode()) for key in keys}) == 1  # one Redis Cluster slot
    for key in keys:
        assert 60 < await redis_client.ttl(key) <= 65


async def test_each_redis_call_is_one_round_trip(prefix: str) -> None:
    sent: list[int] = []

    class Counting(Connection):
        async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            sent.append(1)
            await super().send_packed_command(command, check_health)

    client = make_client(connection_class=Counting)
    await _ping_or_skip(client)
    try:
        window = RedisUsageWindow(client, prefix, clock=FakeClock())
        await window.current(["warm-up"])  # loads the script if this server lacks it
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: window.add("a", requests=1, tokens=10),
            lambda: window.current(["a", "b", "c"]),
            lambda: window.buckets(["a", "b"]),
        ]
        for call in calls:
            sent.clear()
            await call()
            assert len(sent) == 1
    finally:
        await client.aclose()


async def test_redis_window_loads_its_script_when_the_server_lacks_it(
    redis_client: Redis, prefix: str
) -> None:
    # The same script under a SHA no server has seen: as on first use or after a restart.
    lua = f"{RedisUsageWindow._read_lua}-- {uuid.uuid4().hex}\n"

    class FreshScript(RedisUsageWindow):
        __slots__ = ()
        _read_lua = lua
        _read_sha = hashlib.sha1(lua.encode(), usedforsecurity=False).hexdigest()

    assert await redis_client.script_exists(FreshScript._read_sha) == [False]
    window = FreshScript(redis_client, prefix, clock=FakeClock())
    await window.add("d", requests=2)
    assert await window.current(["d"]) == {"d": (2, 0)}
    assert await redis_client.script_exists(FreshScript._read_sha) == [True]


async def test_unreachable_redis_raises_usage_unavailable() -> None:
    # Nothing listens on port 1; no retries, so the test takes milliseconds.
    client = Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    window = RedisUsageWindow(client, "test:usage:down", clock=FakeClock())
    try:
        with pytest.raises(UsageUnavailableError, match="Redis failed"):
            await window.current(["d"])
        with pytest.raises(UsageUnavailableError):
            await window.add("d", requests=1)
    finally:
        await client.aclose()


async def test_a_hung_redis_costs_at_most_the_timeout() -> None:
    writers: list[asyncio.StreamWriter] = []

    async def accept_and_say_nothing(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writers.append(writer)
        await reader.read()  # until the client gives up and closes

    server = await asyncio.start_server(accept_and_say_nothing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0))
    window = RedisUsageWindow(client, "test:usage:hung", timeout_s=0.05, clock=FakeClock())
    try:
        with pytest.raises(UsageUnavailableError, match="did not answer in time"):
            await window.current(["d"])
        with pytest.raises(UsageUnavailableError, match="did not answer in time"):
            await window.add("d", requests=1)
    finally:
        await client.aclose()
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()
