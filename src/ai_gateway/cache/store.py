"""Where cache entries live: in this process (a byte-bounded LRU, the embedded default) or in
Redis (shared by every instance). An entry is opaque bytes with a time to live; the stage
encodes and decodes it (cache/entry.py).

A backend that cannot answer raises `CacheUnavailableError`; the stage then bypasses the cache
for that request. Nothing here raises anything else for a backend failure.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError


class CacheUnavailableError(Exception):
    """The backend did not answer (Redis down or slow)."""


class CacheStore(Protocol):
    # Writes take a round trip: the stage stores entries in the background rather than
    # holding up the answer for them.
    deferred: bool

    async def get(self, namespace: str, digest: str) -> bytes | None: ...

    async def set(self, namespace: str, digest: str, value: bytes, ttl_s: float) -> None: ...

    async def delete(self, namespace: str | None = None, digest: str | None = None) -> int:
        """Remove one entry (`digest`), a namespace's, or every entry; how many went."""
        ...

    async def try_lock(self, name: str, ttl_s: float) -> bool:
        """Take a short lock shared by every instance (coalescing); False when held."""
        ...

    async def unlock(self, name: str) -> None: ...


class MemoryStore:
    """A least-recently-used map bounded by the bytes of its values, with a TTL per entry. One
    event loop's: no locks needed."""

    deferred = False

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, str], tuple[bytes, float]] = OrderedDict()
        self._bytes = 0
        self._now = time.monotonic

    @property
    def size_bytes(self) -> int:
        return self._bytes

    async def get(self, namespace: str, digest: str) -> bytes | None:
        return self.peek(namespace, digest)

    async def set(self, namespace: str, digest: str, value: bytes, ttl_s: float) -> None:
        self.put(namespace, digest, value, ttl_s)

    # In process, the store answers at once: the cache stage calls these without awaiting.

    def peek(self, namespace: str, digest: str) -> bytes | None:
        key = (namespace, digest)
        found = self._entries.get(key)
        if found is None:
            return None
        value, expires = found
        if expires <= self._now():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, namespace: str, digest: str, value: bytes, ttl_s: float) -> None:
        if len(value) > self._max_bytes:
            return
        key = (namespace, digest)
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (value, self._now() + ttl_s)
        self._bytes += len(value)
        while self._bytes > self._max_bytes:
            self._drop(next(iter(self._entries)))

    async def delete(self, namespace: str | None = None, digest: str | None = None) -> int:
        doomed = [
            key
            for key in self._entries
            if (namespace is None or key[0] == namespace) and (digest is None or key[1] == digest)
        ]
        for key in doomed:
            self._drop(key)
        return len(doomed)

    async def try_lock(self, name: str, ttl_s: float) -> bool:
        return True  # one instance: its in-process coalescing is enough

    async def unlock(self, name: str) -> None:
        return None

    def _drop(self, key: tuple[str, str]) -> None:
        value, _ = self._entries.pop(key)
        self._bytes -= len(value)


class RedisStore:
    """Entries at `<prefix>:cache:<namespace>:<digest>` with Redis's own expiry."""

    deferred = True

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:cache"

    def _key(self, namespace: str, digest: str) -> str:
        return f"{self._prefix}:{namespace}:{digest}"

    async def get(self, namespace: str, digest: str) -> bytes | None:
        try:
            value = await self._redis.get(self._key(namespace, digest))
        except (RedisError, OSError) as exc:
            raise CacheUnavailableError(type(exc).__name__) from None
        if isinstance(value, str):  # the gateway's Redis client decodes replies as UTF-8
            return value.encode()
        return value if isinstance(value, bytes) else None

    async def set(self, namespace: str, digest: str, value: bytes, ttl_s: float) -> None:
        try:
            await self._redis.set(self._key(namespace, digest), value, px=max(1, int(ttl_s * 1000)))
        except (RedisError, OSError) as exc:
            raise CacheUnavailableError(type(exc).__name__) from None

    async def delete(self, namespace: str | None = None, digest: str | None = None) -> int:
        pattern = self._key(namespace or "*", digest or "*")
        removed = 0
        try:
            batch: list[bytes | str] = []
            async for key in self._redis.scan_iter(match=pattern, count=500):
                batch.append(key)
                if len(batch) >= 500:
                    removed += await self._redis.delete(*batch)
                    batch = []
            if batch:
                removed += await self._redis.delete(*batch)
        except (RedisError, OSError) as exc:
            raise CacheUnavailableError(type(exc).__name__) from None
        return removed

    async def try_lock(self, name: str, ttl_s: float) -> bool:
        try:
            taken = await self._redis.set(
                f"{self._prefix}-lock:{name}", b"1", nx=True, px=max(1, int(ttl_s * 1000))
            )
        except (RedisError, OSError) as exc:
            raise CacheUnavailableError(type(exc).__name__) from None
        return bool(taken)

    async def unlock(self, name: str) -> None:
        with contextlib.suppress(RedisError, OSError):  # it expires by itself
            await self._redis.delete(f"{self._prefix}-lock:{name}")
