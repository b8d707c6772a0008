"""The in-process rate limiter on an injected clock: GCRA request rates, token buckets with
debt, concurrency leases and the eviction of idle keys."""

from __future__ import annotations

import math
import random

import pytest

from ai_gateway.security.ratelimit import (
    Decision,
    LocalRateLimiter,
    Rate,
    RateLimiter,
)

NS = 1_000_000_000


class Clock:
    """Nanoseconds, moved by the test."""

    def __init__(self) -> None:
        self.ns = 5_000 * NS

    def __call__(self) -> int:
        return self.ns

    def advance(self, seconds: float) -> None:
        self.ns += round(seconds * NS)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def limiter(clock: Clock) -> LocalRateLimiter:
    return LocalRateLimiter(clock=clock)


def hammer(
    limiter: LocalRateLimiter, clock: Clock, rate: Rate, seconds: float, step_s: float
) -> int:
    """Ask every `step_s` from t=0 to t=`seconds` inclusive; the number admitted."""
    admitted = 0
    for _ in range(round(seconds / step_s) + 1):
        admitted += limiter.hit_now("k", rate).allowed
        clock.advance(step_s)
    return admitted


@pytest.mark.parametrize(
    ("rps", "burst", "seconds"),
    [(10.0, 5, 3.0), (3.0, 2, 2.0), (4.0, 1, 2.0), (0.5, 3, 10.0), (100.0, 20, 1.0), (7.0, 4, 1.5)],
)
def test_from_idle_exactly_burst_plus_rate_times_t_are_admitted(
    limiter: LocalRateLimiter, clock: Clock, rps: float, burst: int, seconds: float
) -> None:
    admitted = hammer(limiter, clock, Rate(rps, burst), seconds, step_s=0.001)
    assert admitted == burst + math.floor(rps * seconds)


def test_no_window_ever_admits_more_than_burst_plus_rate_times_its_length(
    limiter: LocalRateLimiter, clock: Clock
) -> None:
    rate = Rate(rps=4.0, burst=3)
    rng = random.Random(7)
    admitted_at: list[int] = []
    for _ in range(5_000):  # bursty arrivals: clumps and pauses
        clock.advance(rng.choice([0.0, 0.001, 0.01, 0.05, 0.3, 1.5]))
        if limiter.hit_now("k", rate).allowed:
            admitted_at.append(clock.ns)
    assert len(admitted_at) > 500
    worst: dict[float, int] = {}
    for window_s in (0.1, 0.5, 1.0, 2.5, 10.0):
        end = round(window_s * NS)
        worst[window_s] = max(
            sum(1 for t in admitted_at[i : i + 100] if t <= start + end)
            for i, start in enumerate(admitted_at)
        )
        assert worst[window_s] <= rate.burst + math.floor(rate.rps * window_s)
    assert worst[0.1] == rate.burst, "a clump after a pause gets the whole burst"


def test_burst_remaining_reset_and_retry_after(limiter: LocalRateLimiter, clock: Clock) -> None:
    rate = Rate(rps=1.0, burst=3)
    first, second, third = (limiter.hit_now("k", rate) for _ in range(3))
    assert first == Decision(True, 3, 2, 1.0, 0.0)
    assert second == Decision(True, 3, 1, 2.0, 0.0)
    assert third == Decision(True, 3, 0, 3.0, 0.0)
    assert limiter.hit_now("k", rate) == Decision(False, 3, 0, 3.0, 1.0)
    clock.advance(0.25)
    assert limiter.hit_now("k", rate) == Decision(False, 3, 0, 2.75, 0.75)
    clock.advance(0.75)  # exactly when retry_after said
    assert limiter.hit_now("k", rate) == Decision(True, 3, 0, 3.0, 0.0)
    clock.advance(3.0)  # fully replenished: the whole burst again
    assert limiter.hit_now("k", rate) == Decision(True, 3, 2, 1.0, 0.0)


def test_refused_requests_cost_nothing(limiter: LocalRateLimiter, clock: Clock) -> None:
    rate = Rate(rps=2.0, burst=1)
    assert limiter.hit_now("k", rate).allowed
    for _ in range(1000):
        assert not limiter.hit_now("k", rate).allowed
    clock.advance(0.5)
    assert limiter.hit_now("k", rate).allowed


def test_keys_are_independent(limiter: LocalRateLimiter) -> None:
    rate = Rate(rps=1.0, burst=1)
    assert limiter.hit_now("user:alice", rate).allowed
    assert not limiter.hit_now("user:alice", rate).allowed
    assert limiter.hit_now("user:bob", rate).allowed


async def test_async_hit_is_the_same_check(limiter: LocalRateLimiter) -> None:
    shared: RateLimiter = limiter
    rate = Rate(rps=1.0, burst=2)
    assert (await shared.hit("k", rate)).remaining == 1
    assert limiter.hit_now("k", rate).remaining == 0
    assert not (await shared.hit("k", rate)).allowed
    assert shared.readiness().ok


@pytest.mark.parametrize(
    ("rps", "burst"), [(0.0, 1), (-1.0, 1), (math.nan, 1), (math.inf, 1), (1.0, 0), (1.0, True)]
)
def test_invalid_rates_are_refused(rps: float, burst: int) -> None:
    with pytest.raises(ValueError, match=r"rps|burst"):
        Rate(rps, burst)


def test_decisions_are_immutable_values() -> None:
    made = Decision(False, 10, 0, 1.5, 0.25)
    assert made == Decision(allowed=False, limit=10, remaining=0, reset_s=1.5, retry_after_s=0.25)
    assert hash(made) == hash(Decision(False, 10, 0, 1.5, 0.25))
    with pytest.raises(AttributeError):
        made.allowed = True  # type: ignore[misc]


# -- tokens ----------------------------------------------------------------------------------


def test_tokens_are_checked_without_charging(limiter: LocalRateLimiter) -> None:
    for _ in range(3):
        assert limiter.check_tokens_now("k", 600) == Decision(True, 600, 600, 0.0, 0.0)


def test_tokens_refill_at_tpm_per_minute(limiter: LocalRateLimiter, clock: Clock) -> None:
    assert limiter.charge_tokens_now("k", 600, 100) == Decision(True, 600, 500, 10.0, 0.0)
    clock.advance(1.0)  # 10 tokens per second
    assert limiter.check_tokens_now("k", 600) == Decision(True, 600, 510, 9.0, 0.0)
    clock.advance(9.0)
    assert limiter.check_tokens_now("k", 600).remaining == 600
    clock.advance(100.0)  # a full bucket does not overflow
    assert limiter.check_tokens_now("k", 600).remaining == 600


async def test_debt_refuses_until_the_refill_paid_it(
    limiter: LocalRateLimiter, clock: Clock
) -> None:
    assert (await limiter.check_tokens("k", 600)).allowed
    charged = await limiter.charge_tokens("k", 600, 900)  # level 600 - 900 = -300
    assert charged == Decision(False, 600, 0, 90.0, 30.000000001)
    clock.advance(29.9)
    refused = await limiter.check_tokens("k", 600)
    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(0.1, abs=1e-6)
    clock.advance(0.1)  # level exactly 0: not above zero yet
    assert not (await limiter.check_tokens("k", 600)).allowed
    clock.advance(0.1)  # level 1
    admitted = await limiter.check_tokens("k", 600)
    assert (admitted.allowed, admitted.remaining, admitted.retry_after_s) == (True, 1, 0.0)
    assert admitted.reset_s == pytest.approx(59.9)


def test_charging_nothing_changes_nothing(limiter: LocalRateLimiter) -> None:
    assert limiter.charge_tokens_now("k", 60, 0) == Decision(True, 60, 60, 0.0, 0.0)
    assert len(limiter) == 0


@pytest.mark.parametrize(("tpm", "tokens"), [(0, 1), (-5, 1), (60, -1), (60, True)])
def test_invalid_token_arguments_are_refused(
    limiter: LocalRateLimiter, tpm: int, tokens: int
) -> None:
    with pytest.raises(ValueError, match=r"tpm|tokens"):
        limiter.charge_tokens_now("k", tpm, tokens)


# -- concurrency -----------------------------------------------------------------------------


async def test_leases_up_to_the_limit(limiter: LocalRateLimiter, clock: Clock) -> None:
    assert await limiter.acquire("k", 2, "a", 60.0) == Decision(True, 2, 1, 60.0, 0.0)
    clock.advance(1.0)
    assert await limiter.acquire("k", 2, "b", 60.0) == Decision(True, 2, 0, 60.0, 0.0)
    refused = await limiter.acquire("k", 2, "c", 60.0)
    assert refused == Decision(False, 2, 0, 60.0, 1.0)  # retry capped at 1 s
    assert (await limiter.acquire("k", 2, "b", 60.0)).allowed, "renewing a held lease"
    await limiter.release("k", "a")
    assert (await limiter.acquire("k", 2, "c", 60.0)).allowed
    assert not (await limiter.acquire("k", 2, "d", 60.0)).allowed
    await limiter.release("k", "unknown")  # ignored
    await limiter.release("other", "a")


def test_leases_of_a_crashed_holder_expire(limiter: LocalRateLimiter, clock: Clock) -> None:
    assert limiter.acquire_now("k", 1, "crashed", 0.3).allowed
    clock.advance(0.1)
    refused = limiter.acquire_now("k", 1, "next", 0.3)
    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(0.2)
    clock.advance(0.2)
    assert limiter.acquire_now("k", 1, "next", 0.3) == Decision(True, 1, 0, 0.3, 0.0)


def test_invalid_lease_arguments_are_refused(limiter: LocalRateLimiter) -> None:
    with pytest.raises(ValueError, match="limit"):
        limiter.acquire_now("k", 0, "a", 1.0)
    with pytest.raises(ValueError, match="ttl_s"):
        limiter.acquire_now("k", 1, "a", 0.0)


# -- memory ----------------------------------------------------------------------------------


def test_replenished_keys_are_evicted(clock: Clock) -> None:
    limiter = LocalRateLimiter(clock=clock, sweep_interval_s=10.0)
    rate = Rate(rps=1.0, burst=2)
    for i in range(1000):
        limiter.hit_now(f"user:{i}", rate)
    limiter.charge_tokens_now("debtor", 60, 600)  # full again in 600 s
    limiter.charge_tokens_now("light", 60, 1)  # full again in 1 s
    limiter.acquire_now("conc", 5, "held", 60.0)
    limiter.acquire_now("conc", 5, "released", 60.0)
    limiter.release_now("conc", "released")
    limiter.acquire_now("conc2", 5, "expiring", 2.0)
    assert len(limiter) == 1004
    clock.advance(9.0)
    limiter.hit_now("user:0", rate)  # before the sweep is due: nothing is dropped
    assert len(limiter) == 1004
    clock.advance(2.0)
    limiter.hit_now("fresh", rate)
    assert len(limiter) == 3  # fresh, the debtor and the held lease
    assert not limiter.check_tokens_now("debtor", 60).allowed, "state in debt is kept"
    assert not limiter.acquire_now("conc", 1, "other", 60.0).allowed
    # an evicted key behaves exactly like one never seen: the whole burst
    assert limiter.hit_now("user:0", rate) == Decision(True, 2, 1, 1.0, 0.0)
