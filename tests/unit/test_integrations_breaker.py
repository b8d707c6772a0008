"""SourceBreaker on an injected clock, the reason codes and the x-gateway-context rendering."""

from __future__ import annotations

import pytest

from ai_gateway.integrations.breaker import BreakerState, SourceBreaker
from ai_gateway.integrations.config import SourceBreakerConfig
from ai_gateway.integrations.reasons import Reason, reason_for_status
from ai_gateway.integrations.sources import SourceStatus, render_context_header


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(failures: int = 3, cooldown_s: float = 30.0) -> tuple[SourceBreaker, Clock, list[str]]:
    clock = Clock()
    events: list[str] = []
    breaker = SourceBreaker(
        SourceBreakerConfig(failures=failures, cooldown_s=cooldown_s),
        clock=clock,
        probe_timeout_s=5.0,
        on_change=lambda state: events.append(state.value),
    )
    return breaker, clock, events


def test_consecutive_failures_open_the_circuit() -> None:
    breaker, _, events = make(failures=3)
    for _ in range(2):
        assert breaker.allows()
        breaker.record_failure()
    assert breaker.allows()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allows()
    assert events == ["open"]


def test_a_success_resets_the_count() -> None:
    breaker, _, events = make(failures=3)
    for _ in range(5):
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allows()
    assert events == []


def test_after_the_cooldown_one_probe_closes_the_circuit() -> None:
    breaker, clock, events = make(failures=1, cooldown_s=30.0)
    breaker.record_failure()
    clock.now += 29.9
    assert not breaker.allows()
    clock.now += 0.2
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allows()  # the probe
    assert not breaker.allows()  # only one at a time
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allows()
    assert events == ["open", "closed"]


def test_a_failed_probe_opens_the_circuit_for_another_cooldown() -> None:
    breaker, clock, events = make(failures=2, cooldown_s=10.0)
    breaker.record_failure()
    breaker.record_failure()
    clock.now += 10.0
    assert breaker.allows()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now += 9.0
    assert not breaker.allows()
    clock.now += 1.0
    assert breaker.allows()
    assert events == ["open", "open"]


def test_a_success_from_before_the_trip_does_not_close_it() -> None:
    breaker, _, _ = make(failures=1)
    breaker.record_failure()
    breaker.record_success()  # a call let through before the circuit opened
    assert breaker.state is BreakerState.OPEN


def test_an_abandoned_or_lost_probe_lets_another_through() -> None:
    breaker, clock, _ = make(failures=1, cooldown_s=1.0)
    breaker.record_failure()
    clock.now += 1.0
    assert breaker.allows()
    breaker.release_probe()
    assert breaker.allows()
    assert not breaker.allows()
    clock.now += 5.0  # probe_timeout_s: the probe never reported
    assert breaker.allows()


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (401, Reason.UNAUTHORIZED),
        (403, Reason.FORBIDDEN),
        (404, Reason.NOT_FOUND),
        (400, Reason.REJECTED),
        (422, Reason.REJECTED),
        (429, Reason.UNAVAILABLE),
        (500, Reason.UNAVAILABLE),
        (503, Reason.UNAVAILABLE),
        (302, Reason.BAD_RESPONSE),
    ],
)
def test_status_codes_map_to_reasons(status: int, reason: Reason) -> None:
    assert reason_for_status(status) is reason


def test_the_header_lists_sources_in_order() -> None:
    statuses = [
        SourceStatus("memory", Reason.OK),
        SourceStatus("project", Reason.TIMEOUT, 0.3, "overall budget"),
        SourceStatus("learning", Reason.CIRCUIT_OPEN),
    ]
    assert render_context_header(statuses) == "memory=ok, project=timeout, learning=circuit_open"
    assert render_context_header([]) == ""
