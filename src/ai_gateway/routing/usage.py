"""Requests and tokens each deployment has served over the last minute (rpm/tpm usage).

The usage-based strategy compares these figures with each deployment's ``rpm``/``tpm``
capacity. Two implementations of one small protocol:

- :class:`LocalUsageWindow`: this process only (a single gateway instance, tests).
- :class:`RedisUsageWindow`: shared by every gateway instance using the same Redis and key
  prefix.

Both count in one-second buckets: "the last 60 s" is the current second and the 59 before
it, so the window slides a second at a time. Counts may be corrected with negative amounts
(for example, to replace a token estimate by the provider's reported usage); the reported
totals never go below zero.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

__all__ = [
    "WINDOW_S",
    "Bucket",
    "LocalUsageWindow",
    "RedisUsageWindow",
    "UsageUnavailableError",
    "UsageWindow",
]

WINDOW_S = 60


@dataclass(frozen=True, slots=True)
class Bucket:
    """One second of a deployment's usage, and the seconds until it leaves the window."""

    frees_in_s: float
    requests: int
    tokens: int


class UsageUnavailableError(Exception):
    """The shared usage store could not be reached or answered with an error."""


class UsageWindow(Protocol):
    async def current(self, dep_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        """``(requests, tokens)`` per deployment over the last 60 s, one entry per id."""
        ...

    async def add(self, dep_id: str, *, requests: int = 0, tokens: int = 0) -> None:
        """Count usage against ``dep_id`` in the current second."""
        ...

    async def buckets(self, dep_ids: Sequence[str]) -> dict[str, list[Bucket]]:
        """The non-empty seconds in each deployment's window, oldest first.

        For working out when capacity frees up (``Retry-After``); not on the hot path.
        """
        ...


class LocalUsageWindow:
    """An in-process window. ``clock`` returns seconds (monotonic by default; inject a
    fake in tests). Memory is bounded by the deployments used in the last minute."""

    __slots__ = ("_clock", "_deps")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # Per deployment: [second, requests, tokens] buckets oldest first, and their totals.
        self._deps: dict[str, tuple[deque[list[int]], list[int]]] = {}

    def _slide(self, dep_id: str, now_s: int) -> tuple[deque[list[int]], list[int]] | None:
        found = self._deps.get(dep_id)
        if found is None:
            return None
        buckets, totals = found
        while buckets and buckets[0][0] <= now_s - WINDOW_S:
            _, requests, tokens = buckets.popleft()
            totals[0] -= requests
            totals[1] -= tokens
        if not buckets:
            del self._deps[dep_id]
            return None
        return found

    async def current(self, dep_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        now_s = math.floor(self._clock())
        result: dict[str, tuple[int, int]] = {}
        for dep_id in dep_ids:
            found = self._slide(dep_id, now_s)
            totals = (0, 0) if found is None else found[1]
            result[dep_id] = (max(0, totals[0]), max(0, totals[1]))
        return result

    async def add(self, dep_id: str, *, requests: int = 0, tokens: int = 0) -> None:
        if not requests and not tokens:
            return
        now_s = math.floor(self._clock())
        found = self._slide(dep_id, now_s)
        if found is None:
            found = self._deps[dep_id] = (deque(), [0, 0])
        buckets, totals = found
        if buckets and buckets[-1][0] == now_s:
            buckets[-1][1] += requests
            buckets[-1][2] += tokens
        else:
            buckets.append([now_s, requests, tokens])
        totals[0] += requests
        totals[1] += tokens

    async def buckets(self, dep_ids: Sequence[str]) -> dict[str, list[Bucket]]:
        now = self._clock()
        now_s = math.floor(now)
        result: dict[str, list[Bucket]] = {}
        for dep_id in dep_ids:
            found = self._slide(dep_id, now_s)
            result[dep_id] = [
                Bucket(second + WINDOW_S - now, requests, tokens)
                for second, requests, tokens in (() if found is None else found[0])
                if requests or tokens
            ]
        return result


# Reads one deployment's buckets (KEYS, oldest second first; all share one hash tag, so one
# cluster slot). ARGV[1] == "sum": return {requests, tokens}; otherwise every bucket's pair.
_READ_LUA = """
local sum = ARGV[1] == 'sum'
local requests, tokens, out = 0, 0, {}
for i, key in ipairs(KEYS) do
  local v = redis.call('HMGET', key, 'r', 't')
  local r, t = tonumber(v[1]) or 0, tonumber(v[2]) or 0
  if sum then
    requests, tokens = requests + r, tokens + t
  else
    out[#out + 1] = r
    out[#out + 1] = t
  end
end
if sum then return {requests, tokens} end
return out
"""
_READ_SHA = hashlib.sha1(_READ_LUA.encode(), usedforsecurity=False).hexdigest()


def _unavailable(exc: BaseException) -> UsageUnavailableError:
    if isinstance(exc, TimeoutError):
        return UsageUnavailableError("usage window: Redis did not answer in time")
    return UsageUnavailableError(f"usage window: Redis failed: {type(exc).__name__}: {exc}")


# A bucket outlives its last second in the window by this much, for clock skew between hosts.
_EXPIRE_MARGIN_S = 5


class RedisUsageWindow:
    """A window shared through Redis.

    Keys are ``{<prefix>:<dep_id>}:<unix second>``, hashes with fields ``r`` and ``t``
    that expire a little after they leave the window. The braces are a Redis Cluster hash
    tag: one deployment's keys live in one slot, so a single script can read them all.
    Every call is one round trip (a pipeline; one script call per deployment).

    Buckets are cut by ``clock`` (wall-clock seconds; each gateway host's own, so keep
    hosts in NTP sync). Each call is bounded by ``timeout_s``, so a hung Redis costs a
    request that long at most; errors and timeouts are raised as
    :class:`UsageUnavailableError`.
    """

    __slots__ = ("_clock", "_prefix", "_redis", "_timeout_s")
    _read_lua: ClassVar[str] = _READ_LUA
    _read_sha: ClassVar[str] = _READ_SHA

    def __init__(
        self,
        redis: Redis,
        prefix: str = "aigw:usage",
        *,
        timeout_s: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._timeout_s = timeout_s
        self._clock = clock

    def _keys(self, dep_id: str, now_s: int) -> list[str]:
        tag = f"{{{self._prefix}:{dep_id}}}"
        return [f"{tag}:{second}" for second in range(now_s - WINDOW_S + 1, now_s + 1)]

    async def add(self, dep_id: str, *, requests: int = 0, tokens: int = 0) -> None:
        if not requests and not tokens:
            return
        key = f"{{{self._prefix}:{dep_id}}}:{math.floor(self._clock())}"
        pipe = self._redis.pipeline(transaction=False)
        if requests:
            pipe.hincrby(key, "r", requests)
        if tokens:
            pipe.hincrby(key, "t", tokens)
        pipe.expire(key, WINDOW_S + _EXPIRE_MARGIN_S)
        try:
            async with asyncio.timeout(self._timeout_s):
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise _unavailable(exc) from exc

    async def _evalsha(self, dep_ids: Sequence[str], now_s: int, mode: str) -> list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        for dep_id in dep_ids:
            keys = self._keys(dep_id, now_s)
            pipe.evalsha(self._read_sha, len(keys), *keys, mode)
        return list(await pipe.execute())

    async def _read(self, dep_ids: Sequence[str], now_s: int, mode: str) -> list[Any]:
        try:
            async with asyncio.timeout(self._timeout_s):
                try:
                    return await self._evalsha(dep_ids, now_s, mode)
                except NoScriptError:
                    # First use on this server (or after a restart or SCRIPT FLUSH).
                    await self._redis.script_load(self._read_lua)
                    return await self._evalsha(dep_ids, now_s, mode)
        except (RedisError, OSError) as exc:  # TimeoutError is an OSError
            raise _unavailable(exc) from exc

    async def current(self, dep_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        if not dep_ids:
            return {}
        replies = await self._read(dep_ids, math.floor(self._clock()), "sum")
        return {
            dep_id: (max(0, int(reply[0])), max(0, int(reply[1])))
            for dep_id, reply in zip(dep_ids, replies, strict=True)
        }

    async def buckets(self, dep_ids: Sequence[str]) -> dict[str, list[Bucket]]:
        if not dep_ids:
            return {}
        now = self._clock()
        now_s = math.floor(now)
        replies = await self._read(dep_ids, now_s, "all")
        first = now_s - WINDOW_S + 1
        result: dict[str, list[Bucket]] = {}
        for dep_id, reply in zip(dep_ids, replies, strict=True):
            pairs = [(int(reply[i]), int(reply[i + 1])) for i in range(0, len(reply), 2)]
            result[dep_id] = [
                Bucket(first + offset + WINDOW_S - now, requests, tokens)
                for offset, (requests, tokens) in enumerate(pairs)
                if requests or tokens
            ]
        return result


def estimated_tokens(body: Mapping[str, Any]) -> int:
    """A cheap upper estimate for strategies and tpm accounting: about 4 bytes per token."""
    size = 0
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            size += len(content)
        elif isinstance(content, list):
            size += sum(len(str(p.get("text", ""))) for p in content if isinstance(p, dict))
    requested = body.get("max_completion_tokens") or body.get("max_tokens") or 0
    return size // 4 + (requested if isinstance(requested, int) else 0)
