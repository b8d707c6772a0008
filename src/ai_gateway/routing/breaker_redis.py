"""Circuit breaker state shared through Redis (a `SharedBreakerStore`).

Keys (one hash tag, so every breaker key lives in one cluster slot and scripts may touch two):

    {<prefix>}:fail:<dep_id>   sorted set of failure times (Redis TIME, ms): the sliding window
    {<prefix>}:open:<dep_id>   present while the circuit is open; its TTL is the cooldown left
    {<prefix>}:events          pub/sub channel: "open|<ms>|<dep_id>" and "close|0|<dep_id>"

Durations, never timestamps, cross the wire: the open key's TTL is counted by Redis and each
instance converts "open for N ms more" to its own monotonic clock, so hosts' clocks need not
agree. Each failure is one script call (trim the window, add, count; at the threshold drop the
window, SET the open key with PX and PUBLISH "open"). A probe success DELetes both keys and
PUBLISHes "close". Every instance SUBSCRIBEs and mirrors the events; on start and after every
reconnect it first subscribes, then SCANs the open keys, so a circuit tripped before it (re)joined
is known.

Redis unreachable: commands are skipped (the breaker counts locally), `breaker_redis_unavailable`
is logged once, readiness says so, and the subscriber retries with backoff until it can
subscribe and resync, then logs `breaker_redis_recovered`. No call waits more than
`op_timeout_s` for Redis, and nothing raises into the request path.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from ai_gateway.observability.health import CheckResult
from ai_gateway.observability.logging import get_logger
from ai_gateway.routing.breaker import CloseHandler, OpenHandler

_FAILURE = """
local pttl = redis.call('PTTL', KEYS[2])
if pttl > 0 then return pttl end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZADD', KEYS[1], now, ARGV[4])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[3])
  redis.call('PUBLISH', ARGV[5], 'open|' .. ARGV[3] .. '|' .. ARGV[6])
  return tonumber(ARGV[3])
end
redis.call('PEXPIRE', KEYS[1], window)
return 0
"""
# KEYS: fail, open. ARGV: window ms, threshold, open ms, member, channel, dep id.

_OPEN = """
local ms = tonumber(ARGV[1])
local pttl = redis.call('PTTL', KEYS[2])
if pttl >= ms then return pttl end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[1])
redis.call('PUBLISH', ARGV[2], 'open|' .. ARGV[1] .. '|' .. ARGV[3])
return ms
"""
# KEYS: fail, open. ARGV: open ms, channel, dep id. Never shortens an open circuit.

_CLOSE = """
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('PUBLISH', ARGV[1], 'close|0|' .. ARGV[2])
return 1
"""
# KEYS: fail, open. ARGV: channel, dep id.


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class RedisBreakerStore:
    """Shared breaker state in Redis. `client` is the process's shared client (see
    `ai_gateway.stores.redis.create_redis`); this store never closes it. All instances that
    should agree use the same `prefix`."""

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = "ai-gateway:breaker",
        op_timeout_s: float = 0.1,
        connect_timeout_s: float = 2.0,
        ping_interval_s: float = 5.0,
        backoff_s: tuple[float, float] = (0.2, 10.0),
    ) -> None:
        self._client = client
        tag = "{" + prefix + "}:"
        self._fail_prefix, self._open_prefix = tag + "fail:", tag + "open:"
        self._channel = tag + "events"
        self._op_timeout_s = op_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._ping_interval_s = ping_interval_s
        self._backoff_s = backoff_s
        self._failure = client.register_script(_FAILURE)
        self._open = client.register_script(_OPEN)
        self._close = client.register_script(_CLOSE)
        self._members = itertools.count()
        self._instance = uuid.uuid4().hex[:12]
        self._log = get_logger(__name__)
        self._available: bool | None = None  # None: no connection attempt has finished yet
        self._down_since: datetime | None = None
        self._down_reason = ""
        self._reconnected = False
        self._task: asyncio.Task[None] | None = None
        self._first_attempt = asyncio.Event()
        self._on_open: OpenHandler | None = None
        self._on_close: CloseHandler | None = None

    # -- commands (request path) -------------------------------------------------------------

    async def add_failure(
        self, dep_id: str, *, threshold: int, window_s: float, open_s: float
    ) -> float | None:
        member = f"{self._instance}:{next(self._members)}"
        args = (_ms(window_s), threshold, _ms(open_s), member, self._channel, dep_id)
        result = await self._run(self._failure, dep_id, args)
        return None if result is None else max(0, result) / 1000

    async def open(self, dep_id: str, open_s: float) -> None:
        await self._run(self._open, dep_id, (_ms(open_s), self._channel, dep_id))

    async def close(self, dep_id: str) -> None:
        await self._run(self._close, dep_id, (self._channel, dep_id))

    async def _run(self, script: Any, dep_id: str, args: tuple[object, ...]) -> int | None:
        if not self._available:
            return None  # the subscriber will tell when Redis is back; don't wait on it here
        keys = (self._fail_prefix + dep_id, self._open_prefix + dep_id)
        try:
            async with asyncio.timeout(self._op_timeout_s):
                result = await script(keys=keys, args=args)
        except Exception as exc:  # unreachable, too slow, or refused: fall back to local state
            self._mark_down(exc)
            return None
        return int(result)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, on_open: OpenHandler, on_close: CloseHandler) -> None:
        if self._task is not None:
            return
        self._on_open, self._on_close = on_open, on_close
        self._first_attempt = asyncio.Event()
        self._task = asyncio.create_task(self._follow(), name="breaker-redis-subscriber")
        await self._first_attempt.wait()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def readiness(self) -> CheckResult:
        if self._available:
            return CheckResult(True, "shared via redis")
        if self._down_since is None:
            return CheckResult(False, "shared via redis: not connected yet; using local state")
        since = self._down_since.isoformat(timespec="seconds")
        return CheckResult(
            False, f"redis unreachable since {since} ({self._down_reason}): using local state"
        )

    # -- the subscriber ----------------------------------------------------------------------

    async def _follow(self) -> None:
        """Subscribe, resync, mirror events; on any failure back off and start over."""
        low, high = self._backoff_s
        delay = low
        while True:
            pubsub = self._client.pubsub()
            try:
                await self._subscribe_and_load(pubsub)
                self._mark_up()
                delay = low
                self._first_attempt.set()
                await self._pump(pubsub)
            except Exception as exc:
                self._mark_down(exc)
            finally:
                self._first_attempt.set()
                if pubsub.connection is not None:  # back to the pool: stop following it
                    pubsub.connection.deregister_connect_callback(self._on_pubsub_reconnect)
                # Older redis-py releases leave aclose untyped; a typed reference keeps the
                # call checked on every version the dependency range allows.
                aclose: Callable[[], Awaitable[object]] = pubsub.aclose
                with contextlib.suppress(Exception):
                    await aclose()
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, high)

    async def _subscribe_and_load(self, pubsub: PubSub) -> None:
        async with asyncio.timeout(self._connect_timeout_s):
            await pubsub.subscribe(self._channel)
            while True:  # the confirmation: from here on no event is missed
                reply = await pubsub.get_message(timeout=self._connect_timeout_s)
                if reply is not None and reply["type"] == "subscribe":
                    break
            self._reconnected = False
            if pubsub.connection is not None:
                pubsub.connection.register_connect_callback(self._on_pubsub_reconnect)
            opened = await self._load_open()
        if self._on_open is not None:
            for dep_id, remaining_s in opened:
                self._on_open(dep_id, remaining_s)

    async def _load_open(self) -> list[tuple[str, float]]:
        pattern = "".join("\\" + c if c in "*?[]\\" else c for c in self._open_prefix) + "*"
        keys = [_text(key) async for key in self._client.scan_iter(match=pattern, count=500)]
        if not keys:
            return []
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.pttl(key)
        ttls = await pipe.execute()
        start = len(self._open_prefix)
        return [
            (key[start:], int(ttl) / 1000) for key, ttl in zip(keys, ttls, strict=True) if ttl > 0
        ]

    async def _pump(self, pubsub: PubSub) -> None:
        """Mirror events until a command fails (resync) or the connection is replaced under us
        (redis-py reconnects and resubscribes silently: events may have been missed). A PING
        every `ping_interval_s` with no reply for three intervals means the link is dead."""
        heard = pinged = time.monotonic()
        while self._available and not self._reconnected:
            message = await pubsub.get_message(timeout=min(1.0, self._ping_interval_s))
            now = time.monotonic()
            if message is not None:
                heard = now
                if message["type"] == "message":
                    self._dispatch(_text(message["data"]))
            if now - heard > 3 * self._ping_interval_s:
                raise TimeoutError("no reply on the pub/sub connection")
            if now - pinged >= self._ping_interval_s:
                pinged = now
                await pubsub.ping()

    def _dispatch(self, data: str) -> None:
        kind, _, rest = data.partition("|")
        ms, _, dep_id = rest.partition("|")
        try:
            if kind == "open" and self._on_open is not None and int(ms) > 0:
                self._on_open(dep_id, int(ms) / 1000)
            elif kind == "close" and self._on_close is not None:
                self._on_close(dep_id)
        except ValueError:
            self._log.warning("breaker_redis_bad_event", event=data[:200])

    async def _on_pubsub_reconnect(self, connection: object) -> None:
        self._reconnected = True

    # -- availability ------------------------------------------------------------------------

    def _mark_down(self, exc: BaseException) -> None:
        if self._available is False:
            return
        self._available = False
        self._down_since = datetime.now(UTC)
        self._down_reason = type(exc).__name__
        self._log.warning(
            "breaker_redis_unavailable",
            error=type(exc).__name__,
            detail=str(exc)[:200],
            fallback="local circuit state per instance",
        )

    def _mark_up(self) -> None:
        if self._available is False:
            self._log.info("breaker_redis_recovered", down_since=str(self._down_since))
        self._available = True
        self._down_since = None
        self._down_reason = ""
