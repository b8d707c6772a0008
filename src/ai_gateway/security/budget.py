"""Budget periods and spend counters: how much a scope (a user, key, team...) has spent in the
current period, exactly, in this process or shared by every instance through Redis.

Periods are calendar windows in UTC (`period_window`): a day from midnight, a week from Monday
midnight, a month from the 1st, and "total" since the epoch with no end. A new period starts a
new counter (its own key), so nothing needs resetting.

Exactness: amounts are `Decimal` USD and are stored as integer pico-dollars (USD * 10**12). An
amount with more than 12 decimals is rounded UP to the next pico-dollar (ROUND_CEILING), so
spend is never under-counted: after n additions the total exceeds the exact sum by less than n
pico-dollars, and equals it when every amount has at most 12 decimals (prices per token do).
Floats are refused. In Redis a counter is a 64-bit integer: at most 2**63 - 1 pico-dollars,
about 9.2 million USD per scope and period; past that `add` raises `SpendUnavailableError`.

Overshoot (documented and tested end to end by the caller): a request is admitted while
spent < budget and charged with its actual cost when it ends. The counters are exact and atomic,
so the spend can exceed the budget only by the cost of the requests that were admitted while
the spend was still below the budget and were in flight when it was reached: at most the sum of
the in-flight requests' costs (fleet-wide, with the Redis counter), never more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Literal, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

Period = Literal["day", "week", "month", "total"]
PERIODS: tuple[Period, ...] = ("day", "week", "month", "total")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PICO_DIGITS = 12
PICO_PER_USD = 1_000_000_000_000
KEEP_AFTER_END = timedelta(days=1)  # a period's counter outlives its end by this much


class SpendUnavailableError(Exception):
    """The shared spend counter cannot answer (Redis unreachable, too slow, or the counter
    would overflow). The caller decides whether to admit the request. The message never names
    the Redis URL."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def period_window(period: Period, now: datetime) -> tuple[datetime, datetime | None]:
    """[start, end) of the `period` containing `now`, in UTC; end is None for "total".

    `now` must be timezone-aware (any zone: it is converted to UTC first)."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if now.tzinfo is not UTC:
        now = now.astimezone(UTC)
    return _window_of_day(period, now.year, now.month, now.day)


@lru_cache(maxsize=256)
def _window_of_day(
    period: Period, year: int, month: int, day: int
) -> tuple[datetime, datetime | None]:
    """The window of `period` containing the UTC day `year-month-day` (every request of a day
    asks for the same few windows, so they are computed once)."""
    start = datetime(year, month, day, tzinfo=UTC)
    if period == "day":
        return start, start + timedelta(days=1)
    if period == "week":
        start -= timedelta(days=start.weekday())  # Monday is 0
        return start, start + timedelta(days=7)
    if period == "month":
        start = start.replace(day=1)
        if start.month == 12:
            return start, start.replace(year=start.year + 1, month=1)
        return start, start.replace(month=start.month + 1)
    if period == "total":
        return EPOCH, None
    raise ValueError(f"unknown budget period {period!r}")


def to_pico(amount: Decimal | int) -> int:
    """`amount` USD as integer pico-dollars, rounded up to a whole pico-dollar (exact integer
    arithmetic: no Decimal context is involved). Negative, NaN, infinite and float amounts are
    refused (`ValueError`, `TypeError`)."""
    if isinstance(amount, bool) or not isinstance(amount, Decimal | int):
        raise TypeError("amounts are Decimal USD (floats are not exact)")
    if isinstance(amount, Decimal) and not amount.is_finite():
        raise ValueError("amounts must be finite")
    if amount < 0:
        raise ValueError("amounts must not be negative")
    if isinstance(amount, int):
        return amount * PICO_PER_USD
    numerator, denominator = amount.as_integer_ratio()  # exact
    return -(-numerator * PICO_PER_USD // denominator)


def from_pico(pico: int) -> Decimal:
    """Integer pico-dollars as Decimal USD, exactly (12 decimals; 0 as plain `Decimal(0)`)."""
    if pico == 0:
        return Decimal(0)
    return Decimal(f"{pico}E-{PICO_DIGITS}")


class SpendCounter(Protocol):
    """Spend per scope and period. `scope_key` is an opaque string ("user:alice",
    "team:core"); `now` (default: the counter's clock, UTC) picks the period."""

    async def spent(
        self, scope_key: str, period: Period, *, now: datetime | None = None
    ) -> Decimal:
        """The spend so far in the current period (0 when nothing was recorded)."""

    async def add(
        self, scope_key: str, period: Period, amount: Decimal, *, now: datetime | None = None
    ) -> Decimal:
        """Add `amount` (>= 0) atomically; the new total of the period."""

    async def seed(
        self, scope_key: str, period: Period, amount: Decimal, *, now: datetime | None = None
    ) -> bool:
        """Set the period's spend to `amount` only if no counter exists for it yet (e.g. from
        the analytics store after a restart). True when it was set."""


class LocalSpendCounter:
    """Spend counters in this process (exact, atomic under asyncio: nothing awaits inside).
    Counters of ended periods are dropped `KEEP_AFTER_END` after their end, by a sweep run at
    most once per `sweep_interval`."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] = _utcnow,
        sweep_interval: timedelta = timedelta(hours=1),
    ) -> None:
        self._clock = clock
        self._sweep_interval = sweep_interval
        self._counters: dict[tuple[str, Period, datetime], int] = {}
        self._next_sweep: datetime | None = None

    def _slot(
        self, scope_key: str, period: Period, now: datetime | None
    ) -> tuple[str, Period, datetime]:
        clock_now = self._clock()
        if self._next_sweep is None or clock_now >= self._next_sweep:
            self._sweep(clock_now)
        start, _ = period_window(period, clock_now if now is None else now)
        return (scope_key, period, start)

    async def spent(
        self, scope_key: str, period: Period, *, now: datetime | None = None
    ) -> Decimal:
        return from_pico(self._counters.get(self._slot(scope_key, period, now), 0))

    async def add(
        self, scope_key: str, period: Period, amount: Decimal, *, now: datetime | None = None
    ) -> Decimal:
        pico = to_pico(amount)
        slot = self._slot(scope_key, period, now)
        total = self._counters[slot] = self._counters.get(slot, 0) + pico
        return from_pico(total)

    async def seed(
        self, scope_key: str, period: Period, amount: Decimal, *, now: datetime | None = None
    ) -> bool:
        pico = to_pico(amount)
        slot = self._slot(scope_key, period, now)
        if slot in self._counters:
            return False
        self._counters[slot] = pico
        return True

    def __len__(self) -> int:
        return len(self._counters)

    def _sweep(self, now: datetime) -> None:
        self._next_sweep = now + self._sweep_interval
        stale = []
        for slot in self._counters:
            _, end = period_window(slot[1], slot[2])
            if end is not None and end + KEEP_AFTER_END <= now:
                stale.append(slot)
        for slot in stale:
            del self._counters[slot]


@lru_cache(maxsize=256)
def _key_parts(start: datetime, end: datetime | None) -> tuple[str, int | None]:
    """A period's key suffix (its start as YYYYMMDD) and its counter's expiry (unix seconds)."""
    expire_at = None if end is None else int((end + KEEP_AFTER_END).timestamp())
    return f"{start:%Y%m%d}", expire_at


class RedisSpendCounter:
    """Spend counters shared by every instance through Redis: one integer key per scope and
    period start, `<prefix>:{<scope_key>}:<period>:<YYYYMMDD of the start>`, hash-tagged by
    scope. `add` is INCRBY and EXPIREAT in one MULTI/EXEC (one round trip, atomic); `seed` is
    SET NX. Keys expire `KEEP_AFTER_END` after their period ends ("total" never expires).
    Every call is bounded by `op_timeout_s`; any Redis failure raises `SpendUnavailableError`.
    `client` (see `ai_gateway.stores.redis.create_redis`) is never closed here."""

    def __init__(
        self,
        client: Redis,
        prefix: str = "ai-gateway:spend",
        *,
        op_timeout_s: float = 0.25,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._op_timeout_s = op_timeout_s
        self._clock = clock

    def redis_key(
        self, scope_key: str, period: Period, *, now: datetime | None = None
    ) -> tuple[str, int | None]:
        """The key of the current period's counter and its expiry (unix seconds, or None)."""
        stamp, expire_at = _key_parts(*period_window(period, self._clock() if now is None else now))
        return f"{self._prefix}:{{{scope_key}}}:{period}:{stamp}", expire_at

    async def spent(
        self, scope_key: str, period: Period, *, now: datetime | None = None
    ) -> Decimal:
        key, _ = self.redis_key(scope_key, period, now=now)
        try:
            async with asyncio.timeout(self._op_timeout_s):
                value = await self._client.get(key)
        except (RedisError, OSError, TimeoutError) as exc:
            raise SpendUnavailableError("the spend counter is unavailable (redis)") from exc
        return from_pico(0 if value is None else int(value))

    async def add(
        self, scope_key: str, period: Period, amount: Decimal, *, now: datetime | None = None
    ) -> Decimal:
        pico = to_pico(amount)
        key, expire_at = self.redis_key(scope_key, period, now=now)
        try:
            async with asyncio.timeout(self._op_timeout_s):
                async with self._client.pipeline(transaction=True) as pipe:
                    pipe.incrby(key, pico)
                    if expire_at is not None:
                        pipe.expireat(key, expire_at)
                    total, *_ = await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            raise SpendUnavailableError("the spend counter is unavailable (redis)") from exc
        return from_pico(int(total))

    async def seed(
        self, scope_key: str, period: Period, amount: Decimal, *, now: datetime | None = None
    ) -> bool:
        pico = to_pico(amount)
        key, expire_at = self.redis_key(scope_key, period, now=now)
        try:
            async with asyncio.timeout(self._op_timeout_s):
                done = await self._client.set(key, pico, nx=True, exat=expire_at)
        except (RedisError, OSError, TimeoutError) as exc:
            raise SpendUnavailableError("the spend counter is unavailable (redis)") from exc
        return bool(done)
