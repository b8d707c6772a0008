"""Budget reservations: what the requests in flight may still cost, per budget and period.

A request under a budget reserves the most it can cost (usage/estimate.py) when it is admitted,
and gives the reservation back when it is settled (its real cost charged first). Admission
counts the reservations made before its own beside the spend, so concurrent requests cannot all
start against the same remaining budget: without them, N requests in flight could overshoot by
N requests' cost (20 streams overspent a $0.0001 budget 241-fold); with them, by about one.

Reservations are kept in this process (exact, atomic under asyncio: nothing here awaits), not in
Redis: they cannot leak when an instance dies, and need no round trip. With several instances
each one reserves for its own requests only: N instances can each start requests against what
remains, so the fleet's overshoot is at most (N - 1) x what remained + N x one request's cost
(docs/security.md).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from ai_gateway.security.budget import Period, period_window

Slot = tuple[str, Period, datetime]  # (budget key, period, the period's start)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Reservations:
    def __init__(self, clock: Callable[[], datetime] = _utcnow) -> None:
        self._clock = clock
        self._held: dict[Slot, Decimal] = {}

    def reserve(self, key: str, period: Period, amount: Decimal) -> tuple[Slot, Decimal]:
        """Reserve `amount` in the current period; returns the slot (to release it later, in
        the same period whenever that is) and what was reserved there before."""
        start, _ = period_window(period, self._clock())
        slot = (key, period, start)
        before = self._held.get(slot, Decimal(0))
        self._held[slot] = before + amount
        return slot, before

    def release(self, slot: Slot, amount: Decimal) -> None:
        left = self._held.get(slot, Decimal(0)) - amount
        if left > 0:
            self._held[slot] = left
        else:
            self._held.pop(slot, None)  # nothing held: no entry (the dict stays small)

    def held(self, key: str, period: Period) -> Decimal:
        start, _ = period_window(period, self._clock())
        return self._held.get((key, period, start), Decimal(0))
