"""The pipe's command timeouts (stores/redis_pipe.py), against a server that takes the
connection and its first command and then never answers: a command sent with `timeout_s` fails
with `TimeoutError` soon after its deadline (one sweeping timer for the whole pipe, no timer
per command), one without a deadline keeps waiting, and an admission through such a server
answers None (the caller's failure mode) within the limiter's op timeout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ai_gateway.security.admit_redis import RateCheck, RedisAdmitter
from ai_gateway.security.budget import RedisSpendCounter
from ai_gateway.security.ratelimit import LocalRateLimiter, Rate
from ai_gateway.security.ratelimit_redis import RedisRateLimiter
from ai_gateway.stores.redis import create_redis
from ai_gateway.stores.redis_pipe import SWEEP_S, RedisPipe


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


async def test_a_command_past_its_timeout_fails_and_one_without_keeps_waiting(
    silent_url: str,
) -> None:
    pipe = RedisPipe(silent_url)
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        with pytest.raises(TimeoutError):
            await pipe.send("PING", timeout_s=0.1)
        waited = loop.time() - started
        assert 0.1 <= waited < 0.1 + SWEEP_S + 0.15, waited

        untimed = pipe.send("PING")
        timed = pipe.send("PING", timeout_s=0.05)
        with pytest.raises(TimeoutError):
            await timed
        await asyncio.sleep(SWEEP_S * 3)
        assert not untimed.done(), "no deadline: still waiting for its reply"
    finally:
        await pipe.aclose()
    assert untimed.done()  # failed by the close


async def test_an_admission_through_a_silent_redis_gives_up_within_the_op_timeout(
    silent_url: str,
) -> None:
    client = create_redis(silent_url)
    limiter = RedisRateLimiter(client, "test:rl", "fail_open", LocalRateLimiter(), op_timeout_s=0.1)
    gate = RedisAdmitter(RedisPipe(silent_url), limiter, RedisSpendCounter(client, "test:spend"))
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        assert await gate.admit([RateCheck("user:x", Rate(1.0, 1))]) is None
        assert loop.time() - started < 0.1 + SWEEP_S + 0.15
        assert limiter.degraded
    finally:
        await gate.aclose()
        await client.aclose()
