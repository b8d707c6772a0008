"""Redis that takes the connection and then never answers (stores/redis_pipe.py): an admission
through it answers None (the caller's failure mode) within the limiter's op timeout, bounded by
a deadline of the loop's shared timer (ai_gateway/timers.py) rather than a timer of its own, and
a settlement gives up the same way."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ai_gateway.security.admit_redis import RateCheck, RedisAdmitter
from ai_gateway.security.budget import RedisSpendCounter
from ai_gateway.security.ratelimit import LocalRateLimiter, Rate
from ai_gateway.security.ratelimit_redis import RedisRateLimiter
from ai_gateway.stores.redis import create_redis
from ai_gateway.stores.redis_pipe import RedisPipe


@pytest.fixture
async def silent_url() -> AsyncIterator[str]:
    """A server that answers the connection's first write (its CLIENT SETNAME) and nothing
    after it."""
    connections: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        if await reader.read(65536):
            writer.write(b"+OK\r\n")
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        for writer in connections:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.fixture
async def gate(silent_url: str) -> AsyncIterator[RedisAdmitter]:
    """Limits and budgets through the silent server, with an op timeout of 0.1 s."""
    client = create_redis(silent_url)
    limiter = RedisRateLimiter(client, "test:rl", "fail_open", LocalRateLimiter(), op_timeout_s=0.1)
    made = RedisAdmitter(RedisPipe(silent_url), limiter, RedisSpendCounter(client, "test:spend"))
    try:
        yield made
    finally:
        await made.aclose()
        await client.aclose()


async def test_an_admission_through_a_silent_redis_gives_up_within_the_op_timeout(
    gate: RedisAdmitter,
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    admitted = gate.admit([RateCheck("user:x", Rate(1.0, 1))])
    assert await asyncio.wait_for(admitted, 5) is None  # a regression fails, not hangs
    assert loop.time() - started < 0.1 + 0.15
    assert gate.limiter.degraded


async def test_a_settlement_through_a_silent_redis_gives_up_within_the_op_timeout(
    gate: RedisAdmitter,
) -> None:
    settled = gate.settle([("user:x", "lease-1")], [], [])
    assert settled is not None, "sent: Redis was not known to be down"
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await asyncio.wait_for(settled, 5) is None
    assert loop.time() - started < 0.1 + 0.15
    assert gate.limiter.degraded
