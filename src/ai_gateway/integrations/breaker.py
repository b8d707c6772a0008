"""A circuit breaker for one context source: consecutive failures open it.

`failures` failures in a row open the circuit for `cooldown_s`; while it is open the source is
skipped without a network call. After the cooldown exactly one call, the probe, is let through:
its success closes the circuit, its failure opens it for another cooldown. Any success while
closed resets the count.

Unlike the router's breaker (`routing/breaker.py`: failures within a sliding window, shared
through Redis), this one is local and counts only consecutive failures: a context source is
optional, so a cheap per-instance guard that stops paying its timeout is enough.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum

from ai_gateway.integrations.config import SourceBreakerConfig


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class SourceBreaker:
    def __init__(
        self,
        config: SourceBreakerConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        probe_timeout_s: float = 60.0,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        """`probe_timeout_s`: a probe that never reports (a lost task) is given up after this
        long and another one is let through. `on_change`: told of every transition."""
        self._failures_to_open = config.failures
        self._cooldown_s = config.cooldown_s
        self._clock = clock
        self._probe_timeout_s = probe_timeout_s
        self._on_change = on_change
        self._failures = 0
        self._open_until: float | None = None  # None: closed
        self._probe_at: float | None = None

    @property
    def state(self) -> BreakerState:
        if self._open_until is None:
            return BreakerState.CLOSED
        if self._clock() < self._open_until:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def allows(self) -> bool:
        """May a call go out now? After the cooldown: True once, for the probe."""
        if self._open_until is None:
            return True
        now = self._clock()
        if now < self._open_until:
            return False
        if self._probe_at is not None and now - self._probe_at < self._probe_timeout_s:
            return False
        self._probe_at = now
        return True

    def release_probe(self) -> None:
        """The probe was abandoned without an outcome (its request was cancelled)."""
        self._probe_at = None

    def record_success(self) -> None:
        if self._open_until is None:
            self._failures = 0
        elif self._probe_at is not None:  # the probe succeeded
            self._close()
        # else: a call let through before the circuit opened; it proves little.

    def record_failure(self) -> None:
        if self._open_until is None:
            self._failures += 1
            if self._failures >= self._failures_to_open:
                self._open()
        elif self._probe_at is not None:  # the probe failed
            self._open()

    def _open(self) -> None:
        self._open_until = self._clock() + self._cooldown_s
        self._probe_at = None
        self._failures = 0
        self._emit(BreakerState.OPEN)

    def _close(self) -> None:
        self._open_until = None
        self._probe_at = None
        self._failures = 0
        self._emit(BreakerState.CLOSED)

    def _emit(self, state: BreakerState) -> None:
        if self._on_change is not None:
            self._on_change(state)
