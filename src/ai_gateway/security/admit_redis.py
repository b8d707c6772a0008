"""A request's rate limits and budgets in ONE Redis round trip, and its settlement in one more.

`RedisAdmitter.admit` runs one Lua script over every check a request needs, in the order the
caller gives them (the key's, the user's, the team's and each model's limits, then the
budgets): request rates (GCRA), token buckets (checked), concurrency leases (taken) and the
budgets' spend (read and compared). The script decides every check before it writes anything,
so a request refused by one check consumes none of the others (all or nothing), and several
checks of one Redis key (a fan-out calling one model twice) see each other as they would one
after another. `RedisAdmitter.settle` is one script too: leases released, tokens charged, the
budgets' spend added.

The keys and their values are those of `RedisRateLimiter` and `RedisSpendCounter` (the same
names, so the single-check methods of those classes and these scripts agree), and Redis is
called through the limiter's degradation logic: while Redis cannot answer, `admit` and
`settle` return None without touching the network and the caller applies its failure mode.
One script touches keys of several scopes (several hash tags): it needs one Redis server (or
shard), not a Redis Cluster spreading those keys over slots.

Budget amounts are compared exactly: integer pico-dollars, as decimal strings (Lua's numbers are
doubles, exact only to 2**53 pico-dollars, about 9,000 USD), by length and then lexically.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Coroutine
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from redis.exceptions import NoScriptError

from ai_gateway.security.budget import Period, RedisSpendCounter, from_pico, to_pico
from ai_gateway.security.ratelimit import (
    TOKEN_WINDOW_S,
    Decision,
    Rate,
    check_lease_args,
    check_tokens_args,
    lease_decision,
    token_cost,
    token_decision,
)
from ai_gateway.security.ratelimit_redis import ERRORS, MAX_COST_US, US_PER_S, RedisRateLimiter
from ai_gateway.stores.redis_pipe import RedisPipe
from ai_gateway.timers import cut

_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now / 1000)
local function ge(a, b)
  if #a ~= #b then return #a > #b end
  return a >= b
end
local tats, sets, out = {}, {}, {}
local a = 1
for i = 1, #KEYS do
  local key, kind = KEYS[i], ARGV[a]
  if kind == 'r' then
    local interval, burst = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    a = a + 3
    local tat = tats[key] or tonumber(redis.call('GET', key)) or now
    if tat < now then tat = now end
    local new_tat = tat + interval
    local allow_at = new_tat - interval * burst
    if allow_at > now then return {0, i, tat - now, allow_at - now} end
    tats[key] = new_tat
    out[#out + 1] = math.floor((now - allow_at) / interval)
    out[#out + 1] = new_tat - now
  elseif kind == 't' then
    a = a + 1
    local debt = (tonumber(redis.call('GET', key)) or now) - now
    if debt < 0 then debt = 0 end
    if debt >= TOKEN_WINDOW_US then return {0, i, debt} end
    out[#out + 1] = debt
  elseif kind == 'c' then
    local limit, id, ttl = tonumber(ARGV[a + 1]), ARGV[a + 2], tonumber(ARGV[a + 3])
    a = a + 4
    local s = sets[key]
    if s == nil then
      redis.call('ZREMRANGEBYSCORE', key, '-inf', now_ms)
      s = {held = redis.call('ZCARD', key), adds = {}}
      if s.held > 0 then
        s.first = tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2])
        s.last = tonumber(redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')[2])
      end
      sets[key] = s
    end
    local renew = s.adds[id] ~= nil or redis.call('ZSCORE', key, id)
    if not renew and s.held >= limit then
      return {0, i, s.held, s.first - now_ms, s.last - now_ms}
    end
    if not renew then s.held = s.held + 1 end
    local expiry = now_ms + ttl
    s.adds[id] = expiry
    if s.first == nil or expiry < s.first then s.first = expiry end
    if s.last == nil or expiry > s.last then s.last = expiry end
    out[#out + 1] = s.held
    out[#out + 1] = s.first - now_ms
    out[#out + 1] = s.last - now_ms
  else
    local usd, committed = ARGV[a + 1], ARGV[a + 2]
    a = a + 3
    local spent = redis.call('GET', key) or '0'
    if ge(spent, usd) or ge(spent, committed) then return {0, i, spent} end
  end
end
for key, tat in pairs(tats) do
  redis.call('SET', key, string.format('%.0f', tat),
    'PX', string.format('%.0f', math.ceil((tat - now) / 1000)))
end
for key, s in pairs(sets) do
  for id, expiry in pairs(s.adds) do
    redis.call('ZADD', key, string.format('%.0f', expiry), id)
  end
  redis.call('PEXPIRE', key, string.format('%.0f', s.last - now_ms))
end
table.insert(out, 1, 1)
return out
"""

_SETTLE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
local a = 1
for i = 1, #KEYS do
  local key, kind = KEYS[i], ARGV[a]
  if kind == 'l' then
    redis.call('ZREM', key, ARGV[a + 1])
    a = a + 2
  elseif kind == 'k' then
    local debt = (tonumber(redis.call('GET', key)) or now) - now
    if debt < 0 then debt = 0 end
    debt = debt + tonumber(ARGV[a + 1])
    redis.call('SET', key, string.format('%.0f', now + debt),
      'PX', string.format('%.0f', math.ceil(debt / 1000)))
    a = a + 2
  else
    redis.call('INCRBY', key, ARGV[a + 1])
    if ARGV[a + 2] ~= '' then redis.call('EXPIREAT', key, ARGV[a + 2]) end
    out[#out + 1] = redis.call('GET', key)
    a = a + 3
  end
end
return out
"""
# A token bucket refuses while it is a whole window (in microseconds) in debt.
_ADMIT = _ADMIT.replace("TOKEN_WINDOW_US", str(TOKEN_WINDOW_S * US_PER_S))


class RateCheck(NamedTuple):
    key: str  # the limiter's key, e.g. "user:alice"
    rate: Rate


class TokenCheck(NamedTuple):
    key: str
    tpm: int


class LeaseCheck(NamedTuple):
    key: str
    limit: int
    lease_id: str
    ttl_s: float


class SpendCheck(NamedTuple):
    """A budget: refused while the spend has reached `usd`, or `usd` minus what this
    instance's requests in flight have reserved (`held`)."""

    key: str  # the budget's scope key, e.g. "key:k_1"
    period: Period
    usd: Decimal
    held: Decimal


Check = RateCheck | TokenCheck | LeaseCheck | SpendCheck


class Verdict(NamedTuple):
    """`refused`: the index of the check that refused the request (nothing was taken), or
    None when every check admitted it (and everything was taken). `decisions[i]`: check i's
    decision (a limit) or the spend read (a budget; `Decimal(0)` when admitted, the spend
    when it refused). When refused, only the refusing check's entry is meaningful."""

    refused: int | None
    decisions: list[Decision | Decimal]


@dataclass(frozen=True, slots=True)
class _Script:
    source: str
    sha: str


def _script(source: str) -> _Script:
    return _Script(source, hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest())


class RedisAdmitter:
    """The two scripts, over the keys of `limiter` and `spend`, sent through `pipe` (one
    pipelined connection: stores/redis_pipe.py), which the admitter owns (`aclose`)."""

    def __init__(self, pipe: RedisPipe, limiter: RedisRateLimiter, spend: RedisSpendCounter):
        self._pipe = pipe
        self._limiter = limiter
        self._spend = spend
        self._admit = _script(_ADMIT)
        self._settle = _script(_SETTLE)

    @property
    def limiter(self) -> RedisRateLimiter:
        return self._limiter

    async def admit(self, checks: list[Check]) -> Verdict | None:
        """Run every check in one round trip (see the module's docstring); None when Redis
        cannot answer."""
        keys: list[str] = []
        args: list[str | int] = []
        rkey = self._limiter.redis_key
        for check in checks:
            if isinstance(check, RateCheck):
                keys.append(rkey(check.key, "rps"))
                args += ("r", check.rate.interval_us, check.rate.burst)
            elif isinstance(check, TokenCheck):
                check_tokens_args(check.tpm)
                keys.append(rkey(check.key, "tpm"))
                args.append("t")
            elif isinstance(check, LeaseCheck):
                check_lease_args(check.limit, check.ttl_s)
                keys.append(rkey(check.key, "conc"))
                args += ("c", check.limit, check.lease_id, max(1, round(check.ttl_s * 1000)))
            else:
                keys.append(self._spend.redis_key(check.key, check.period)[0])
                committed = check.usd - check.held
                args += ("b", to_pico(check.usd), to_pico(committed) if committed > 0 else 0)
        script = self._admit
        result = await self._limiter.call(
            lambda: self._answer(script, self._send(script, keys, args), keys, args)
        )
        if result is None:
            return None
        if int(result[0]) == 1:  # {1, each check's values} or {0, the refusing check, its values}
            return Verdict(None, _decisions(checks, result[1:]))
        index = int(result[1]) - 1
        decisions: list[Decision | Decimal] = [Decimal(0)] * len(checks)
        decisions[index] = _refusal(checks[index], result[2:])
        return Verdict(index, decisions)

    def settle(
        self,
        leases: list[tuple[str, str]],
        tokens: list[tuple[str, int, int]],
        spends: list[tuple[str, Period, Decimal]],
    ) -> Coroutine[Any, Any, list[Decimal] | None] | None:
        """Queue, now, one script that releases `leases` (limiter key, lease id), charges
        `tokens` (limiter key, tpm, tokens used) and adds `spends` (budget scope key, period,
        USD). It is queued on the pipe before this returns, so Redis applies it before any
        admission sent after (it leaves with the other commands of this turn of the event
        loop, at its end). Returns None when Redis is not to be called (degraded: nothing was
        sent), else what to await for the spends' new totals, in order (None if Redis did not
        answer)."""
        if not self._limiter.due():
            return None
        keys: list[str] = []
        args: list[str | int] = []
        rkey = self._limiter.redis_key
        for key, lease_id in leases:
            keys.append(rkey(key, "conc"))
            args += ("l", lease_id)
        for key, tpm, used in tokens:
            check_tokens_args(tpm, used)
            keys.append(rkey(key, "tpm"))
            args += ("k", min(MAX_COST_US, token_cost(used, tpm, US_PER_S)))
        for scope_key, period, amount in spends:
            key, expire_at = self._spend.redis_key(scope_key, period)
            keys.append(key)
            args += ("s", to_pico(amount), "" if expire_at is None else expire_at)
        sent = self._send(self._settle, keys, args)
        return self._settled(sent, keys, args)

    async def _settled(
        self, sent: asyncio.Future[Any], keys: list[str], args: list[str | int]
    ) -> list[Decimal] | None:
        limiter = self._limiter
        try:
            result = await cut(self._answer(self._settle, sent, keys, args), limiter.op_timeout_s)
        except ERRORS as exc:
            limiter.failed(exc)
            return None
        limiter.answered()
        return [from_pico(int(total)) for total in result]

    def _send(self, script: _Script, keys: list[str], args: list[str | int]) -> asyncio.Future[Any]:
        return self._pipe.send("EVALSHA", script.sha, len(keys), *keys, *args)

    async def _answer(
        self, script: _Script, sent: asyncio.Future[Any], keys: list[str], args: list[str | int]
    ) -> Any:
        try:
            return await sent
        except NoScriptError:  # Redis restarted or its script cache was flushed: load it
            return await self._pipe.send("EVAL", script.source, len(keys), *keys, *args)

    async def aclose(self) -> None:
        await self._pipe.aclose()


def _decisions(checks: list[Check], result: list[Any]) -> list[Decision | Decimal]:
    decisions: list[Decision | Decimal] = []
    at = 0
    for check in checks:
        if isinstance(check, RateCheck):
            remaining, reset_us = int(result[at]), int(result[at + 1])
            at += 2
            burst = check.rate.burst
            decisions.append(Decision(True, burst, remaining, reset_us / US_PER_S, 0.0))
        elif isinstance(check, TokenCheck):
            decisions.append(token_decision(check.tpm, int(result[at]), US_PER_S))
            at += 1
        elif isinstance(check, LeaseCheck):
            held, first_ms, last_ms = (int(v) for v in result[at : at + 3])
            at += 3
            decisions.append(
                lease_decision(True, check.limit, held, first_ms / 1000, last_ms / 1000)
            )
        else:
            decisions.append(Decimal(0))
    return decisions


def _refusal(check: Check, values: list[Any]) -> Decision | Decimal:
    if isinstance(check, RateCheck):
        reset_us, retry_us = int(values[0]), int(values[1])
        return Decision(False, check.rate.burst, 0, reset_us / US_PER_S, retry_us / US_PER_S)
    if isinstance(check, TokenCheck):
        return token_decision(check.tpm, int(values[0]), US_PER_S)
    if isinstance(check, LeaseCheck):
        held, first_ms, last_ms = (int(v) for v in values[:3])
        return lease_decision(False, check.limit, held, first_ms / 1000, last_ms / 1000)
    return from_pico(int(values[0]))
