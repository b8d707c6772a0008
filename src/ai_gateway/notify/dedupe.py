"""Claims: each occurrence of an event is delivered once for the whole deployment. The first
instance to claim its key delivers it; the others see the claim and skip it.

`RedisClaims` is one `SET key 1 NX PX ttl` per claim, shared by every instance. `LocalClaims`
does the same in this process (no Redis: one instance is the whole deployment). When Redis
cannot answer, the Redis claims fall back to the local ones: an event may then be delivered once
per instance, rather than not at all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ai_gateway.observability.logging import get_logger

log = get_logger(__name__)


class Claims(Protocol):
    async def claim(self, key: str, ttl_s: float) -> bool:
        """True for the first claim of `key` within `ttl_s` seconds (fleet-wide)."""


class LocalClaims:
    """Claims in this process, swept of expired ones once they are more than `max_keys`."""

    def __init__(
        self, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._until: dict[str, float] = {}
        self._max_keys = max_keys
        self._clock = clock

    async def claim(self, key: str, ttl_s: float) -> bool:
        return self.claim_now(key, ttl_s)

    def claim_now(self, key: str, ttl_s: float) -> bool:
        now = self._clock()
        until = self._until.get(key)
        if until is not None and now < until:
            return False
        if len(self._until) >= self._max_keys:
            self._until = {k: u for k, u in self._until.items() if u > now}
            if len(self._until) >= self._max_keys:  # all alive: forget the oldest half
                kept = sorted(self._until.items(), key=lambda item: item[1])
                self._until = dict(kept[len(kept) // 2 :])
        self._until[key] = now + ttl_s
        return True


class RedisClaims:
    def __init__(
        self,
        client: Redis,
        prefix: str,
        *,
        fallback: LocalClaims | None = None,
        op_timeout_s: float = 1.0,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._fallback = fallback or LocalClaims()
        self._op_timeout_s = op_timeout_s

    async def claim(self, key: str, ttl_s: float) -> bool:
        try:
            async with asyncio.timeout(self._op_timeout_s):
                done = await self._client.set(
                    f"{self._prefix}:{key}", 1, nx=True, px=max(1, int(ttl_s * 1000))
                )
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("notify_claim_local", reason="redis_unreachable", error=type(exc).__name__)
            return await self._fallback.claim(key, ttl_s)
        return bool(done)
