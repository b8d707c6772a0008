"""Coalescing across instances, with two cache stages on one event loop sharing a store whose
lock behaves like Redis's (held by one, released when the answer is stored): identical requests
on both make one upstream call, whichever instance they reach and whenever the lock's holder lets
go; each request is counted once, under the status its client saw."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from ai_gateway.cache.config import CacheConfig
from ai_gateway.cache.store import MemoryStore
from ai_gateway.observability.metrics import Metrics
from ai_gateway.pipeline.cache import Cache
from ai_gateway.pipeline.exchange import Exchange, Outcome, chat_exchange
from ai_gateway.request_info import RequestInfo
from ai_gateway.security.config import RequestLimits


class LockingStore(MemoryStore):
    """A memory store with a lock that another instance can hold (as Redis's SET NX)."""

    deferred = True  # stored in the background, as with Redis

    def __init__(self) -> None:
        super().__init__(1 << 20)
        self.locks: set[str] = set()

    async def try_lock(self, name: str, ttl_s: float) -> bool:
        await asyncio.sleep(0)  # a round trip
        if name in self.locks:
            return False
        self.locks.add(name)
        return True

    async def unlock(self, name: str) -> None:
        self.locks.discard(name)


class Upstream:
    def __init__(self, delay_s: float = 0.02) -> None:
        self.calls = 0
        self.delay_s = delay_s

    async def __call__(self, ex: Exchange) -> Outcome:
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        if ex.stream:
            return self.chunks()
        return {
            "id": "c",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "the answer"},
                    "finish_reason": "stop",
                }
            ],
        }

    async def chunks(self) -> AsyncGenerator[dict[str, Any], None]:
        for text, finish in (("the ", None), ("answer", "stop")):
            await asyncio.sleep(self.delay_s)
            yield {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "m",
                "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}],
            }


def exchange(stream: bool) -> Exchange:
    body = {"model": "m", "stream": stream, "messages": [{"role": "user", "content": "same"}]}
    return chat_exchange(body, RequestInfo(request_id="r"), RequestLimits())


async def ask(stage: Cache, upstream: Upstream, stream: bool) -> tuple[str, str]:
    ex = exchange(stream)
    outcome = await stage(ex, upstream)
    if isinstance(outcome, dict):
        text = outcome["choices"][0]["message"]["content"]
    else:
        text = "".join([c["choices"][0]["delta"].get("content", "") async for c in outcome])
    return text, ex.cache_status or ""


def counted(metrics: Metrics, status: str) -> float:
    value = metrics.registry.get_sample_value("ai_gateway_cache_requests_total", {"status": status})
    return value or 0.0


@pytest.mark.parametrize("stream", [False, True])
def test_identical_requests_on_two_instances_make_one_upstream_call(stream: bool) -> None:
    store, upstream = LockingStore(), Upstream()
    config = CacheConfig(enabled=True, coalesce_lock_s=5)
    metrics = [Metrics(), Metrics()]
    stages = [Cache(config, store, m) for m in metrics]

    async def burst() -> list[tuple[str, str]]:
        return await asyncio.gather(*(ask(stages[i % 2], upstream, stream) for i in range(20)))

    replies = asyncio.run(burst())
    assert upstream.calls == 1
    assert {text for text, _ in replies} == {"the answer"}
    statuses = sorted(status for _, status in replies)
    assert statuses == ["hit"] * 19 + ["miss"]
    assert sum(counted(m, "miss") for m in metrics) == 1
    assert sum(counted(m, "hit") for m in metrics) == 19
    assert not store.locks


def test_a_lock_let_go_between_the_lookup_and_the_lock_is_not_a_second_call() -> None:
    """The holder stores its answer and lets go after this instance's lookup missed and before
    it asks for the lock: it takes the lock, but serves the stored answer."""
    store, upstream = LockingStore(), Upstream(delay_s=0)
    config = CacheConfig(enabled=True, coalesce_lock_s=5)
    first, second = Cache(config, store, Metrics()), Cache(config, store, Metrics())

    async def go() -> tuple[str, str]:
        await ask(first, upstream, False)
        await asyncio.sleep(0.01)  # stored, lock released
        get = store.get
        misses = 0

        async def stale_get(namespace: str, digest: str) -> bytes | None:
            nonlocal misses
            if misses == 0:  # the lookup, before the holder stored its answer
                misses += 1
                return None
            return await get(namespace, digest)

        store.get = stale_get  # type: ignore[method-assign]
        return await ask(second, upstream, False)

    text, status = asyncio.run(go())
    assert (text, status) == ("the answer", "hit")
    assert upstream.calls == 1
    assert not store.locks


def test_a_holder_that_fails_lets_the_waiter_call_without_waiting_out_the_lock() -> None:
    store = LockingStore()
    config = CacheConfig(enabled=True, coalesce_lock_s=30)
    first, second = Cache(config, store, Metrics()), Cache(config, store, Metrics())
    calls = 0

    async def failing(ex: Exchange) -> Outcome:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        raise ValueError("the upstream broke")

    async def go() -> tuple[str, str]:
        failed = asyncio.ensure_future(first(exchange(False), failing))
        await asyncio.sleep(0.01)
        waiting = asyncio.ensure_future(ask(second, Upstream(delay_s=0), False))
        with pytest.raises(ValueError, match="broke"):
            await failed
        return await asyncio.wait_for(waiting, 2)  # not the 30 s of the lock

    assert asyncio.run(go()) == ("the answer", "miss")
    assert calls == 1
