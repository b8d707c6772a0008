"""The conditions that become events, watched from what the gateway already knows: spend after a
charge, rate-limit refusals, upstream attempts' outcomes and latencies. Each observation is a
few dictionary operations and integer additions (sliding windows of a fixed number of buckets),
cheap enough for the hot path; an event is handed to `emit` (the notifier's non-blocking queue).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from ai_gateway.notify.config import ErrorWatch, LatencyWatch, RateLimitWatch
from ai_gateway.notify.events import (
    Event,
    budget_threshold,
    errors_spike,
    latency_slo,
    ratelimit_exceeded,
)

Emit = Callable[[Event], None]
Clock = Callable[[], float]
BUCKETS = 10
MAX_SUBJECTS = 10_000  # past this many subjects a watch starts afresh (memory stays bounded)


def crossed(
    before: Decimal, after: Decimal, budget: Decimal, percents: tuple[int, ...]
) -> list[int]:
    """The thresholds (percent of `budget`) that a spend going from `before` to `after` reached."""
    return [p for p in percents if before * 100 < budget * p <= after * 100]


class BudgetWatch:
    def __init__(self, percents: tuple[int, ...], emit: Emit) -> None:
        self._percents = percents
        self._emit = emit

    def spent(
        self,
        scope: str,
        name: str,
        budget_usd: Decimal,
        period: str,
        window: tuple[datetime, datetime | None],
        before: Decimal,
        after: Decimal,
    ) -> None:
        """A charge took a budget's spend from `before` to `after` (the counter's atomic
        result: of all instances, only the one whose charge crossed a threshold sees it)."""
        for percent in crossed(before, after, budget_usd, self._percents):
            self._emit(
                budget_threshold(
                    scope=scope,
                    name=name,
                    percent=percent,
                    budget_usd=budget_usd,
                    spent_usd=after,
                    period=period,
                    period_start=window[0],
                    period_end=window[1],
                )
            )


class RefusalWatch:
    """`count` refusals of one subject within `window_s`: a `ratelimit.exceeded`, then the count
    starts again."""

    def __init__(self, config: RateLimitWatch, emit: Emit, clock: Clock = time.monotonic) -> None:
        self._count = config.count
        self._window_s = config.window_s
        self._emit = emit
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}

    def refused(self, scope: str, subject: str, limit: str) -> None:
        """`subject`: the limiter's key, e.g. "key:k1", "model:fast"."""
        now = self._clock()
        times = self._seen.get(subject)
        if times is None:
            if len(self._seen) >= MAX_SUBJECTS:
                self._seen.clear()
            times = self._seen[subject] = deque(maxlen=self._count)
        times.append(now)
        if len(times) == self._count and now - times[0] <= self._window_s:
            times.clear()
            self._emit(
                ratelimit_exceeded(
                    scope=scope,
                    name=subject.partition(":")[2] or subject,
                    limit=limit,
                    refusals=self._count,
                    window_s=self._window_s,
                )
            )


@dataclass(slots=True)
class _Window:
    """Counts in BUCKETS buckets of `width` seconds; `starts[i]` is bucket i's start."""

    width: float
    starts: list[float] = field(default_factory=lambda: [-1.0] * BUCKETS)
    total: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    marked: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    quiet_until: float = 0.0  # after an event: not again within the window

    def add(self, now: float, mark: bool) -> tuple[int, int]:
        """Count one observation; the totals (all, marked) of the window."""
        start = now - now % self.width
        i = int(now // self.width) % BUCKETS
        if self.starts[i] != start:
            self.starts[i], self.total[i], self.marked[i] = start, 0, 0
        self.total[i] += 1
        if mark:
            self.marked[i] += 1
        oldest = start - self.width * (BUCKETS - 1)
        total = marked = 0
        for j in range(BUCKETS):
            if self.starts[j] >= oldest:
                total += self.total[j]
                marked += self.marked[j]
        return total, marked


class AttemptWatch:
    """Per deployment: the error rate (`errors.spike`) and the share of attempts slower than the
    p95 threshold (`latency.slo`: the p95 is over it when more than 5% are) over sliding
    windows. Once a condition fired for a deployment it is not reported again within its
    window (the rules' `min_interval_s` then spaces the deliveries)."""

    def __init__(
        self, errors: ErrorWatch, latency: LatencyWatch, emit: Emit, clock: Clock = time.monotonic
    ) -> None:
        self._errors_config = errors
        self._latency_config = latency
        self._slow_s = latency.p95_ms / 1000 if latency.p95_ms is not None else None
        self._emit = emit
        self._clock = clock
        self._errors: dict[str, _Window] = {}
        self._latency: dict[str, _Window] = {}

    def attempt(self, deployment: str, model: str, provider: str, seconds: float, ok: bool) -> None:
        now = self._clock()
        config = self._errors_config
        window = _window(self._errors, deployment, config.window_s)
        total, failed = window.add(now, not ok)
        if (
            not ok
            and total >= config.min_requests
            and failed >= config.rate * total
            and now >= window.quiet_until
        ):
            window.quiet_until = now + config.window_s
            self._emit(
                errors_spike(
                    deployment=deployment,
                    model=model,
                    provider=provider,
                    window_s=config.window_s,
                    requests=total,
                    errors=failed,
                )
            )
        if self._slow_s is None or not ok:
            return
        latency = self._latency_config
        window = _window(self._latency, deployment, latency.window_s)
        slow = seconds > self._slow_s
        total, over = window.add(now, slow)
        if (
            slow
            and total >= latency.min_requests
            and over * 20 > total
            and now >= window.quiet_until
        ):
            window.quiet_until = now + latency.window_s
            assert latency.p95_ms is not None
            self._emit(
                latency_slo(
                    deployment=deployment,
                    model=model,
                    provider=provider,
                    window_s=latency.window_s,
                    requests=total,
                    slow=over,
                    p95_ms=latency.p95_ms,
                )
            )


def _window(windows: dict[str, _Window], key: str, window_s: float) -> _Window:
    window = windows.get(key)
    if window is None:
        if len(windows) >= MAX_SUBJECTS:
            windows.clear()
        window = windows[key] = _Window(window_s / BUCKETS)
    return window
