"""Rate limits shared by every gateway instance through Redis (a `RateLimiter`).

Each check is ONE Lua script (EVALSHA, loaded on first use) touching ONE key, so it is atomic
and exact across instances, and Redis Cluster routes it by the key's hash tag:

    <prefix>:{<key>}:rps    requests: the GCRA TAT, integer microseconds of Redis TIME
    <prefix>:{<key>}:tpm    tokens: the instant the bucket is full again, microseconds
    <prefix>:{<key>}:conc   leases: sorted set, lease id -> expiry (milliseconds)

Time is always Redis's own (`TIME` inside the script), so the instances' clocks need not agree.
Every key is written with a PX/PEXPIRE equal to the time until it would be back to its idle
state (bucket full, last lease expired): an idle key vanishes, and a missing key means idle.

Redis unreachable, erroring or slower than `op_timeout_s`:
  fail_open: the call is answered by the `fallback` `LocalRateLimiter` (each instance enforces
      every limit on its own: the fleet admits up to N times the limit), readiness says
      "redis unreachable: local limits (fail_open)".
  fail_closed: `LimiterUnavailableError` (the lead answers 503).
Either way the limiter is then degraded: it logs `ratelimit_redis_unavailable` (at most once
per `warn_interval_s`; the error's type only, never the URL), tries Redis again at most once
per `retry_interval_s` (meanwhile calls do not touch the network at all), and goes back to
Redis, logging `ratelimit_redis_recovered`, as soon as a call succeeds. `release` never raises:
it frees the lease in Redis when it can, and in the fallback always (a lease taken while
degraded lives there); a lease it could not free in Redis expires after its ttl.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ai_gateway.observability.health import CheckResult
from ai_gateway.observability.logging import get_logger
from ai_gateway.security.config import FailureMode
from ai_gateway.security.ratelimit import (
    Decision,
    LimiterUnavailableError,
    LocalRateLimiter,
    Rate,
    check_lease_args,
    check_tokens_args,
    lease_decision,
    token_cost,
    token_decision,
)
from ai_gateway.timers import cut

US_PER_S = 1_000_000
MAX_COST_US = 2**50  # ~35 years of debt: keeps every value an exact integer in Lua's doubles

_NOW_US = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
"""

_GCRA = (
    _NOW_US
    + """
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - interval * tonumber(ARGV[2])
if allow_at > now then
  return {0, 0, tat - now, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat),
  'PX', string.format('%.0f', math.ceil((new_tat - now) / 1000)))
return {1, math.floor((now - allow_at) / interval), new_tat - now, 0}
"""
)
# KEYS: rps. ARGV: emission interval (us), burst.
# Returns {allowed, remaining, reset us, retry-after us}.

_TOKENS = (
    _NOW_US
    + """
local debt = (tonumber(redis.call('GET', KEYS[1])) or now) - now
if debt < 0 then debt = 0 end
local cost = tonumber(ARGV[1])
if cost > 0 then
  debt = debt + cost
  redis.call('SET', KEYS[1], string.format('%.0f', now + debt),
    'PX', string.format('%.0f', math.ceil(debt / 1000)))
end
return debt
"""
)
# KEYS: tpm. ARGV: the refill time of the tokens charged (us; 0 to only check).
# Returns how far ahead of now the bucket is full again (us).

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZCARD', KEYS[1])
local allowed = 0
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  allowed = 1
elseif held < tonumber(ARGV[1]) then
  allowed = 1
  held = held + 1
end
if allowed == 1 then
  redis.call('ZADD', KEYS[1], string.format('%.0f', now + tonumber(ARGV[3])), ARGV[2])
end
if held == 0 then return {allowed, 0, 0, 0} end
local first = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]) - now
local last = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2]) - now
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', last))
return {allowed, held, first, last}
"""
# KEYS: conc. ARGV: limit, lease id, ttl (ms).
# Returns {allowed, leases held, first expiry ms, last expiry ms} (expiries from now).

ERRORS = (RedisError, OSError, TimeoutError)  # what a failed Redis call raises


class RedisRateLimiter:
    """Limits shared through Redis. `client` is the process's shared client (see
    `ai_gateway.stores.redis.create_redis`); it is never closed here. Every instance that
    should share limits uses the same `prefix`. `fallback` answers while Redis is unreachable
    in `fail_open` mode (a fresh `LocalRateLimiter` when not given).

    Cost per check: one round trip (EVALSHA), bounded by `op_timeout_s`."""

    def __init__(
        self,
        client: Redis,
        prefix: str = "ai-gateway:rl",
        failure_mode: FailureMode = "fail_open",
        fallback: LocalRateLimiter | None = None,
        *,
        op_timeout_s: float = 0.25,
        retry_interval_s: float = 1.0,
        warn_interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_mode not in ("fail_open", "fail_closed"):
            raise ValueError("failure_mode must be 'fail_open' or 'fail_closed'")
        self._client = client
        self._prefix = prefix
        self._failure_mode: FailureMode = failure_mode
        self._fallback = fallback if fallback is not None else LocalRateLimiter()
        self._op_timeout_s = op_timeout_s
        self._retry_interval_s = retry_interval_s
        self._warn_interval_s = warn_interval_s
        self._clock = clock
        self._gcra = client.register_script(_GCRA)
        self._tokens = client.register_script(_TOKENS)
        self._acquire = client.register_script(_ACQUIRE)
        self._log = get_logger(__name__)
        self._degraded = False
        self._retry_at = 0.0  # while degraded: Redis is not tried before this (clock)
        self._warned_at: float | None = None

    @property
    def failure_mode(self) -> FailureMode:
        return self._failure_mode

    @property
    def fallback(self) -> LocalRateLimiter:
        """The local limiter answering in `fail_open` mode while Redis cannot."""
        return self._fallback

    @property
    def degraded(self) -> bool:
        """True from a failed Redis call until the next successful one."""
        return self._degraded

    def redis_key(self, key: str, kind: Literal["rps", "tpm", "conc"]) -> str:
        """The Redis key holding `key`'s state of `kind`."""
        return f"{self._prefix}:{{{key}}}:{kind}"

    # -- the RateLimiter protocol ------------------------------------------------------------

    async def hit(self, key: str, rate: Rate) -> Decision:
        args = (rate.interval_us, rate.burst)
        result = await self._script(self._gcra, self.redis_key(key, "rps"), args)
        if result is None:
            return self._local().hit_now(key, rate)
        allowed, remaining, reset_us, retry_us = (int(v) for v in result)
        return Decision(
            allowed == 1, rate.burst, remaining, reset_us / US_PER_S, retry_us / US_PER_S
        )

    async def check_tokens(self, key: str, tpm: int) -> Decision:
        check_tokens_args(tpm)
        result = await self._script(self._tokens, self.redis_key(key, "tpm"), (0,))
        if result is None:
            return self._local().check_tokens_now(key, tpm)
        return token_decision(tpm, int(result), US_PER_S)

    async def charge_tokens(self, key: str, tpm: int, tokens: int) -> Decision:
        check_tokens_args(tpm, tokens)
        cost = min(MAX_COST_US, token_cost(tokens, tpm, US_PER_S))
        result = await self._script(self._tokens, self.redis_key(key, "tpm"), (cost,))
        if result is None:
            return self._local().charge_tokens_now(key, tpm, tokens)
        return token_decision(tpm, int(result), US_PER_S)

    async def acquire(self, key: str, limit: int, lease_id: str, ttl_s: float) -> Decision:
        """See `RateLimiter.acquire`. `lease_id` must be unique across instances (a uuid)."""
        check_lease_args(limit, ttl_s)
        args = (limit, lease_id, max(1, round(ttl_s * 1000)))
        result = await self._script(self._acquire, self.redis_key(key, "conc"), args)
        if result is None:
            return self._local().acquire_now(key, limit, lease_id, ttl_s)
        allowed, held, first_ms, last_ms = (int(v) for v in result)
        return lease_decision(allowed == 1, limit, held, first_ms / 1000, last_ms / 1000)

    async def release(self, key: str, lease_id: str) -> None:
        self._fallback.release_now(key, lease_id)
        rkey = self.redis_key(key, "conc")
        await self.call(lambda: self._client.zrem(rkey, lease_id))

    def readiness(self) -> CheckResult:
        if not self._degraded:
            return CheckResult(True, "shared via redis")
        if self._failure_mode == "fail_open":
            return CheckResult(False, "redis unreachable: local limits (fail_open)")
        return CheckResult(False, "redis unreachable: refusing limited requests (fail_closed)")

    async def aclose(self) -> None:
        """Nothing to release: the client and the fallback belong to the caller."""

    # -- Redis calls and degradation ---------------------------------------------------------

    async def _script(self, script: Any, rkey: str, args: tuple[object, ...]) -> Any:
        return await self.call(lambda: script(keys=(rkey,), args=args))

    async def call(self, make: Callable[[], Awaitable[Any]]) -> Any:
        """The result of the Redis call `make()`, or None when Redis cannot answer (skipped
        while degraded and not yet due for a retry) within `op_timeout_s` (a deadline of the
        loop's shared timer: ai_gateway/timers.py). Also used by `RedisAdmitter`
        (admit_redis.py), whose scripts share this limiter's keys and its degradation."""
        if not self.due():
            return None
        try:
            result = await cut(make(), self._op_timeout_s)
        except ERRORS as exc:
            self.failed(exc)
            return None
        self.answered()
        return result

    @property
    def op_timeout_s(self) -> float:
        return self._op_timeout_s

    def due(self) -> bool:
        """Whether Redis may be called now: not degraded, or degraded and due for a retry (the
        next one is then not before `retry_interval_s`)."""
        if self._degraded:
            now = self._clock()
            if now < self._retry_at:
                return False
            self._retry_at = now + self._retry_interval_s  # one probe per interval
        return True

    def answered(self) -> None:
        """A call succeeded: back on Redis if degraded."""
        if self._degraded:
            self._degraded = False
            self._log.info("ratelimit_redis_recovered", failure_mode=self._failure_mode)

    def failed(self, exc: BaseException) -> None:
        """A call failed: degraded (logged at most once per `warn_interval_s`)."""
        self._mark_down(exc)

    def _local(self) -> LocalRateLimiter:
        if self._failure_mode == "fail_closed":
            raise LimiterUnavailableError("the shared rate limiter is unavailable (redis)")
        return self._fallback

    def _mark_down(self, exc: BaseException) -> None:
        now = self._clock()
        self._degraded = True
        self._retry_at = now + self._retry_interval_s
        if self._warned_at is None or now - self._warned_at >= self._warn_interval_s:
            self._warned_at = now
            self._log.warning(
                "ratelimit_redis_unavailable",
                error=type(exc).__name__,
                failure_mode=self._failure_mode,
                fallback=(
                    "local limits per instance"
                    if self._failure_mode == "fail_open"
                    else "refusing limited requests"
                ),
            )
