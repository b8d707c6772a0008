"""CircuitBreaker on an injected clock, local and against an in-memory shared store."""

from __future__ import annotations

import asyncio

import pytest

from ai_gateway.observability.health import CheckResult
from ai_gateway.routing.breaker import (
    BreakerState,
    CircuitBreaker,
    CloseHandler,
    OpenHandler,
)
from ai_gateway.routing.config import BreakerConfig

CONFIG = BreakerConfig(failures=3, window_s=10.0, cooldown_s=30.0)
DEP = "fast/0"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(
    config: BreakerConfig = CONFIG, *, probe_timeout_s: float = 600.0
) -> tuple[CircuitBreaker, Clock, list[tuple[str, BreakerState]]]:
    clock = Clock()
    events: list[tuple[str, BreakerState]] = []
    breaker = CircuitBreaker(
        config,
        clock=clock,
        on_change=lambda dep, state: events.append((dep, state)),
        probe_timeout_s=probe_timeout_s,
    )
    return breaker, clock, events


async def trip(breaker: CircuitBreaker, dep: str = DEP, **kwargs: float) -> None:
    for _ in range(CONFIG.failures):
        await breaker.record_failure(dep, **kwargs)


async def test_opens_after_threshold_failures_within_the_window() -> None:
    breaker, clock, _ = make()
    await breaker.record_failure(DEP)
    clock.now += 1
    await breaker.record_failure(DEP)
    assert breaker.allows(DEP)
    assert breaker.state(DEP) is BreakerState.CLOSED
    clock.now += 1
    await breaker.record_failure(DEP)
    assert not breaker.allows(DEP)
    assert breaker.state(DEP) is BreakerState.OPEN
    assert breaker.allows("other/0"), "one deployment's circuit does not affect another"


async def test_failures_outside_the_window_do_not_count() -> None:
    breaker, clock, _ = make()
    await breaker.record_failure(DEP)
    await breaker.record_failure(DEP)
    clock.now += CONFIG.window_s + 0.1  # both slide out of the window
    await breaker.record_failure(DEP)
    await breaker.record_failure(DEP)
    assert breaker.allows(DEP)
    await breaker.record_failure(DEP)
    assert not breaker.allows(DEP)


async def test_cooldown_then_exactly_one_probe() -> None:
    breaker, clock, _ = make()
    await trip(breaker)
    clock.now += CONFIG.cooldown_s - 0.01
    assert not breaker.allows(DEP)
    clock.now += 0.01
    assert breaker.state(DEP) is BreakerState.HALF_OPEN
    assert breaker.allows(DEP)
    assert not breaker.allows(DEP)
    clock.now += 5
    assert not breaker.allows(DEP), "no second probe while the first is in flight"


async def test_concurrent_callers_admit_one_probe() -> None:
    breaker, clock, _ = make()
    await trip(breaker)
    clock.now += CONFIG.cooldown_s

    async def attempt() -> bool:
        await asyncio.sleep(0)
        allowed = breaker.allows(DEP)
        await asyncio.sleep(0)
        return allowed

    results = await asyncio.gather(*(attempt() for _ in range(50)))
    assert results.count(True) == 1


async def test_probe_success_closes_and_forgets_failures() -> None:
    breaker, clock, _ = make()
    await trip(breaker)
    clock.now += CONFIG.cooldown_s
    assert breaker.allows(DEP)
    await breaker.record_success(DEP)
    assert breaker.state(DEP) is BreakerState.CLOSED
    assert all(breaker.allows(DEP) for _ in range(5))
    await breaker.record_failure(DEP)
    await breaker.record_failure(DEP)
    assert breaker.allows(DEP), "the window starts empty after closing"


async def test_probe_failure_reopens_for_a_full_cooldown() -> None:
    breaker, clock, _ = make()
    await trip(breaker)
    clock.now += CONFIG.cooldown_s
    assert breaker.allows(DEP)
    await breaker.record_failure(DEP)
    assert breaker.state(DEP) is BreakerState.OPEN
    clock.now += CONFIG.cooldown_s - 0.01
    assert not breaker.allows(DEP)
    clock.now += 0.01
    assert breaker.allows(DEP)


async def test_retry_after_extends_the_cooldown() -> None:
    breaker, clock, _ = make()
    await breaker.record_failure(DEP)
    await breaker.record_failure(DEP)
    await breaker.record_failure(DEP, retry_after_s=120.0)
    clock.now += CONFIG.cooldown_s + 1
    assert not breaker.allows(DEP)
    clock.now += 120.0 - CONFIG.cooldown_s - 1
    assert breaker.allows(DEP)


async def test_short_retry_after_keeps_the_cooldown() -> None:
    breaker, clock, _ = make()
    await trip(breaker, retry_after_s=1.0)
    clock.now += 1.5
    assert not breaker.allows(DEP)


async def test_late_failure_with_retry_after_extends_an_open_circuit() -> None:
    breaker, clock, _ = make()
    await trip(breaker)
    clock.now += 10
    await breaker.record_failure(DEP)  # a request admitted before the trip: not counted
    await breaker.record_failure(DEP, retry_after_s=60.0)
    clock.now += 50  # past the original cooldown, not past the extension
    assert not breaker.allows(DEP)
    clock.now += 10
    assert breaker.allows(DEP)


async def test_success_while_cooling_down_is_ignored() -> None:
    breaker, clock, _ = make()
    await trip(breaker)
    clock.now += 1
    await breaker.record_success(DEP)  # a request admitted before the trip
    assert breaker.state(DEP) is BreakerState.OPEN


async def test_release_probe_lets_another_probe_through() -> None:
    breaker, clock, _ = make()
    await trip(breaker)
    clock.now += CONFIG.cooldown_s
    assert breaker.allows(DEP)
    assert not breaker.allows(DEP)
    breaker.release_probe(DEP)
    assert breaker.allows(DEP)
    assert not breaker.allows(DEP)


async def test_a_probe_that_never_reports_is_given_up() -> None:
    breaker, clock, _ = make(probe_timeout_s=60.0)
    await trip(breaker)
    clock.now += CONFIG.cooldown_s
    assert breaker.allows(DEP)
    clock.now += 59
    assert not breaker.allows(DEP)
    clock.now += 1
    assert breaker.allows(DEP)


async def test_on_change_reports_every_transition_once() -> None:
    breaker, clock, events = make()
    await trip(breaker)
    await breaker.record_failure(DEP)  # already open: no event
    clock.now += CONFIG.cooldown_s
    assert breaker.allows(DEP)
    breaker.release_probe(DEP)
    assert breaker.allows(DEP)  # a second probe: still the same half-open state
    await breaker.record_failure(DEP)
    clock.now += CONFIG.cooldown_s
    assert breaker.allows(DEP)
    await breaker.record_success(DEP)
    await breaker.record_success(DEP)  # closed: no event
    assert [state for _, state in events] == [
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.CLOSED,
    ]
    assert {dep for dep, _ in events} == {DEP}


async def test_a_failing_on_change_does_not_break_the_breaker() -> None:
    def broken(dep: str, state: BreakerState) -> None:
        raise RuntimeError("metrics down")

    breaker = CircuitBreaker(CONFIG, clock=Clock(), on_change=broken)
    await trip(breaker)
    assert not breaker.allows(DEP)


async def test_local_readiness() -> None:
    breaker, _, _ = make()
    await breaker.start()
    result = breaker.readiness()
    assert result.ok
    assert "local" in result.detail
    check = breaker.readiness_check()
    assert not check.required
    assert await check.probe() == result
    await breaker.aclose()


class FakeStore:
    """A SharedBreakerStore in memory: records calls, answers what the test sets."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.answer: float | None = 0.0
        self.raises = False
        self.on_open: OpenHandler | None = None
        self.on_close: CloseHandler | None = None

    async def start(self, on_open: OpenHandler, on_close: CloseHandler) -> None:
        self.on_open, self.on_close = on_open, on_close

    async def aclose(self) -> None:
        self.calls.append(("aclose", ""))

    async def add_failure(
        self, dep_id: str, *, threshold: int, window_s: float, open_s: float
    ) -> float | None:
        self.calls.append(("add_failure", dep_id))
        if self.raises:
            raise ConnectionError("store broken")
        return self.answer

    async def open(self, dep_id: str, open_s: float) -> None:
        self.calls.append(("open", dep_id))

    async def close(self, dep_id: str) -> None:
        self.calls.append(("close", dep_id))

    def readiness(self) -> CheckResult:
        return CheckResult(False, "redis unreachable since then: using local state")


async def shared_breaker() -> tuple[CircuitBreaker, Clock, FakeStore]:
    store = FakeStore()
    clock = Clock()
    breaker = CircuitBreaker(CONFIG, clock=clock, shared=store)
    await breaker.start()
    return breaker, clock, store


async def test_shared_trip_reported_by_the_store_opens_locally() -> None:
    breaker, _, store = await shared_breaker()
    store.answer = 30.0  # another instance's failures completed the window
    await breaker.record_failure(DEP)
    assert store.calls == [("add_failure", DEP)]
    assert not breaker.allows(DEP)


async def test_local_threshold_opens_and_is_pushed_to_the_store() -> None:
    breaker, _, store = await shared_breaker()
    await trip(breaker)
    assert store.calls == [("add_failure", DEP), ("add_failure", DEP), ("open", DEP)]
    assert not breaker.allows(DEP)


async def test_unavailable_or_broken_store_falls_back_to_local_counts() -> None:
    breaker, _, store = await shared_breaker()
    store.answer = None
    await breaker.record_failure(DEP)
    store.raises = True
    await breaker.record_failure(DEP)
    assert breaker.allows(DEP)
    await breaker.record_failure(DEP)
    assert not breaker.allows(DEP)
    assert not breaker.readiness().ok
    assert "local state" in breaker.readiness().detail


async def test_success_while_closed_never_touches_the_store() -> None:
    breaker, _, store = await shared_breaker()
    for _ in range(10):
        assert breaker.allows(DEP)
        await breaker.record_success(DEP)
    assert store.calls == []


async def test_probe_success_closes_through_the_store() -> None:
    breaker, clock, store = await shared_breaker()
    await trip(breaker)
    clock.now += CONFIG.cooldown_s
    assert breaker.allows(DEP)
    await breaker.record_success(DEP)
    assert store.calls[-1] == ("close", DEP)
    await breaker.aclose()
    assert store.calls[-1] == ("aclose", "")


async def test_events_from_other_instances_are_mirrored() -> None:
    breaker, clock, store = await shared_breaker()
    assert store.on_open is not None
    assert store.on_close is not None
    store.on_open(DEP, 5.0)
    assert breaker.state(DEP) is BreakerState.OPEN
    store.on_open(DEP, 2.0)  # never shortens
    clock.now += 4.9
    assert not breaker.allows(DEP)
    clock.now += 0.1
    assert breaker.allows(DEP)  # this instance's probe
    store.on_open(DEP, 30.0)  # another instance's probe failed: open again
    assert breaker.state(DEP) is BreakerState.OPEN
    store.on_close(DEP)  # another instance's probe succeeded
    assert breaker.state(DEP) is BreakerState.CLOSED
    assert breaker.allows(DEP)


@pytest.mark.parametrize("failures", [1, 2])
async def test_small_thresholds(failures: int) -> None:
    breaker, _, _ = make(BreakerConfig(failures=failures, window_s=1.0, cooldown_s=1.0))
    for _ in range(failures - 1):
        await breaker.record_failure(DEP)
    assert breaker.allows(DEP)
    await breaker.record_failure(DEP)
    assert not breaker.allows(DEP)
