"""Budget periods (UTC calendar windows) and the in-process spend counter: exact pico-dollar
arithmetic, seeding, and the eviction of ended periods."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta, timezone
from decimal import Context, Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ai_gateway.security.budget import (
    EPOCH,
    LocalSpendCounter,
    Period,
    SpendCounter,
    from_pico,
    period_window,
    to_pico,
)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.mark.parametrize(
    ("period", "now", "start", "end"),
    [
        ("day", utc(2024, 3, 10, 15, 30), utc(2024, 3, 10), utc(2024, 3, 11)),
        ("day", utc(2024, 12, 31, 23, 59, 59), utc(2024, 12, 31), utc(2025, 1, 1)),
        ("day", utc(2024, 2, 28, 12), utc(2024, 2, 28), utc(2024, 2, 29)),  # leap year
        ("day", utc(2100, 2, 28, 12), utc(2100, 2, 28), utc(2100, 3, 1)),  # not a leap year
        ("week", utc(2024, 1, 7, 23, 59), utc(2024, 1, 1), utc(2024, 1, 8)),  # Sunday
        ("week", utc(2024, 1, 8), utc(2024, 1, 8), utc(2024, 1, 15)),  # Monday midnight
        ("week", utc(2025, 1, 1, 9), utc(2024, 12, 30), utc(2025, 1, 6)),  # across new year
        ("week", utc(2024, 2, 29), utc(2024, 2, 26), utc(2024, 3, 4)),
        ("month", utc(2024, 2, 29, 23, 59), utc(2024, 2, 1), utc(2024, 3, 1)),
        ("month", utc(2023, 2, 15), utc(2023, 2, 1), utc(2023, 3, 1)),
        ("month", utc(2024, 12, 31, 23, 59, 59), utc(2024, 12, 1), utc(2025, 1, 1)),
        ("month", utc(2025, 1, 1), utc(2025, 1, 1), utc(2025, 2, 1)),
        ("month", utc(2024, 4, 30, 12), utc(2024, 4, 1), utc(2024, 5, 1)),
        ("total", utc(2024, 6, 1), EPOCH, None),
    ],
)
def test_period_windows(
    period: Period, now: datetime, start: datetime, end: datetime | None
) -> None:
    assert period_window(period, now) == (start, end)
    assert period_window(period, now)[0].tzinfo is UTC


def test_windows_are_taken_in_utc() -> None:
    # 01:00 on 1 March at UTC+2 is 23:00 on 29 February UTC
    now = datetime(2024, 3, 1, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    assert period_window("day", now) == (utc(2024, 2, 29), utc(2024, 3, 1))
    assert period_window("month", now) == (utc(2024, 2, 1), utc(2024, 3, 1))


def test_naive_times_and_unknown_periods_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        period_window("day", datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="unknown budget period"):
        period_window("year", utc(2024, 1, 1))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("amount", "pico"),
    [
        (Decimal("0"), 0),
        (Decimal("-0"), 0),
        (Decimal("0.000001"), 1_000_000),
        (Decimal("1.5"), 1_500_000_000_000),
        (Decimal("1E+3"), 10**15),
        (Decimal("0.000000000001"), 1),
        (Decimal("1E-13"), 1),  # sub-pico: rounded up, never down
        (Decimal("1.0000000000001"), 10**12 + 1),
        (Decimal("2.0000000000000000000000000001"), 2 * 10**12 + 1),
        (Decimal("12345678.9012345678901"), 12_345_678_901_234_567_891),
        (7, 7 * 10**12),
    ],
)
def test_amounts_become_pico_dollars_rounded_up(amount: Decimal, pico: int) -> None:
    assert to_pico(amount) == pico
    assert from_pico(pico) >= amount
    assert from_pico(pico) - amount < Decimal("1E-12")


@settings(max_examples=500, deadline=None)
@given(
    digits=st.integers(0, 10**40),
    exponent=st.integers(-40, 20),
)
def test_any_amount_is_its_exact_ceiling_in_pico_dollars(digits: int, exponent: int) -> None:
    amount = Decimal(digits).scaleb(exponent, Context(prec=60))
    exact = Fraction(amount) * 10**12
    assert to_pico(amount) == math.ceil(exact)


@pytest.mark.parametrize(
    ("amount", "error"),
    [
        (Decimal("-0.01"), ValueError),
        (-1, ValueError),
        (Decimal("NaN"), ValueError),
        (Decimal("Infinity"), ValueError),
        (0.1, TypeError),
        (True, TypeError),
    ],
)
def test_invalid_amounts_are_refused(amount: Decimal, error: type[Exception]) -> None:
    with pytest.raises(error):
        to_pico(amount)


def test_pico_round_trip_is_exact() -> None:
    for pico in (0, 1, 999_999_999_999, 10**12, 2**63 - 1, 10**30 + 7):
        assert to_pico(from_pico(pico)) == pico
    assert from_pico(0) == 0
    assert from_pico(1) == Decimal("0.000000000001")


async def test_the_total_is_the_exact_decimal_sum() -> None:
    counter: SpendCounter = LocalSpendCounter(clock=Clock(utc(2024, 5, 5)))
    rng = random.Random(11)
    prices = [Decimal("0.0000025"), Decimal("0.00001"), Decimal("0.000000150"), Decimal("0.03")]
    costs = [rng.randrange(1, 5000) * rng.choice(prices) for _ in range(10_000)]
    costs += [Decimal("1234.567890123456"), Decimal("0.000000000001")]
    total = Decimal(0)
    for cost in costs:
        total = await counter.add("team:core", "month", cost)
    exact = sum(costs, Decimal(0))
    assert total == exact
    assert await counter.spent("team:core", "month") == exact
    assert await counter.spent("team:other", "month") == 0


async def test_sub_pico_amounts_are_never_under_counted() -> None:
    counter = LocalSpendCounter(clock=Clock(utc(2024, 5, 5)))
    for _ in range(3):
        total = await counter.add("k", "day", Decimal("1E-13"))
    assert total == Decimal("3E-12")


async def test_each_period_has_its_own_counter() -> None:
    clock = Clock(utc(2024, 1, 31, 23))
    counter = LocalSpendCounter(clock=clock)
    for period in ("day", "week", "month", "total"):
        assert await counter.add("user:alice", period, Decimal("1.25")) == Decimal("1.25")
    clock.now = utc(2024, 2, 1, 1)  # a new day and month, the same week (Monday 29 January)
    assert await counter.spent("user:alice", "day") == 0
    assert await counter.spent("user:alice", "month") == 0
    assert await counter.spent("user:alice", "week") == Decimal("1.25")
    assert await counter.add("user:alice", "total", Decimal("0.75")) == 2
    assert await counter.add("user:alice", "day", Decimal("0.5")) == Decimal("0.5")
    past = utc(2024, 1, 31, 12)  # an explicit time picks its own period
    assert await counter.spent("user:alice", "day", now=past) == Decimal("1.25")


async def test_seed_sets_only_a_missing_counter() -> None:
    counter = LocalSpendCounter(clock=Clock(utc(2024, 5, 5)))
    assert await counter.seed("user:bob", "month", Decimal("10.50"))
    assert not await counter.seed("user:bob", "month", Decimal("99"))
    assert await counter.add("user:bob", "month", Decimal("0.25")) == Decimal("10.75")
    await counter.add("user:carol", "day", Decimal("1"))
    assert not await counter.seed("user:carol", "day", Decimal("5")), "spend already counted"
    assert await counter.spent("user:carol", "day") == 1
    assert await counter.seed("user:carol", "week", Decimal("0"))


async def test_ended_periods_are_dropped_a_day_after_their_end() -> None:
    clock = Clock(utc(2024, 3, 13, 12))  # a Wednesday: the week ends on the 18th
    counter = LocalSpendCounter(clock=clock, sweep_interval=timedelta(minutes=10))
    for period in ("day", "week", "month", "total"):
        await counter.add("k", period, Decimal(1))
    assert len(counter) == 4
    clock.now = utc(2024, 3, 14, 23, 59)  # the day ended less than a day ago
    await counter.spent("k", "day")
    assert len(counter) == 4
    clock.now = utc(2024, 3, 15, 0, 10)  # and the next sweep is due
    assert await counter.spent("k", "day", now=utc(2024, 3, 13, 12)) == 0, "13th dropped"
    assert len(counter) == 3
    clock.now = utc(2024, 4, 2, 1)  # past the week's and the month's end + 1 day
    await counter.spent("k", "total")
    assert len(counter) == 1
    assert await counter.spent("k", "total") == 1
