"""The budget part of admission: which budgets apply to a caller, refusing a request over one,
reserving what a request may cost while it runs, and charging what it cost.

A request is refused with 402 `budget_exceeded` while the period's spend has reached a budget,
and with 429 `budget_reserved` while the spend plus what the requests in flight before it have
reserved (security/reservations.py) has. It reserves the most it can cost when admitted; when it
is settled its real cost is charged and the reservation given back. So one instance overshoots
a budget by less than one request's cost (docs/security.md: the figures for several instances).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

from ai_gateway.errors import BudgetExceededError, RateLimitError, ServiceUnavailableError
from ai_gateway.observability.logging import get_logger
from ai_gateway.observability.metrics import Metrics
from ai_gateway.security.budget import Period, SpendCounter, SpendUnavailableError, period_window
from ai_gateway.security.config import BudgetConfig, BudgetsConfig
from ai_gateway.security.principal import Principal
from ai_gateway.security.reservations import Reservations, Slot
from ai_gateway.stores.analytics import StoreUnavailableError

log = get_logger(__name__)

BudgetScope = Literal["key", "user", "team"]  # also the analytics store's group names
# Spend so far per name (user, key id, team) of one scope kind in [start, end).
SpendSource = Callable[[BudgetScope, datetime, datetime], Awaitable[dict[str, Decimal]]]
Reserved = list[tuple[Slot, Decimal]]  # what a request holds, given back when it is settled
# Told after each charge: the budget, its period's window, the spend before and after it.
SpendWatch = Callable[["Budget", tuple[datetime, datetime | None], Decimal, Decimal], None]


@dataclass(frozen=True, slots=True)
class Budget:
    scope: BudgetScope
    key: str
    usd: Decimal
    period: Period


def _per(period: Period) -> str:
    return "in total" if period == "total" else f"per {period}"


class BudgetGate:
    def __init__(
        self,
        config: BudgetsConfig,
        spend: SpendCounter,
        metrics: Metrics,
        *,
        fail_closed: bool,
        spend_source: SpendSource | None = None,
        on_spent: SpendWatch | None = None,
    ) -> None:
        """`spend_source`: where the spend of a period so far is read when a counter for it
        does not exist yet (after a restart without Redis): the analytics store. `on_spent`:
        told of each charge (budget notifications)."""
        self._on_spent = on_spent
        self._config = config
        self._spend = spend
        self._metrics = metrics
        self._fail_closed = fail_closed
        self._spend_source = spend_source
        self._seeding: dict[tuple[BudgetScope, Period, datetime], asyncio.Future[None]] = {}
        self._reservations = Reservations()

    def of(self, principal: Principal | None) -> list[Budget]:
        """The budgets of the caller: its key's, its user's, its team's (none for the master
        key, or without authentication)."""
        if principal is None or principal.admin:
            return []
        found: list[Budget] = []
        key = principal.key
        if key is not None and key.budget_usd is not None and key.budget_period is not None:
            found.append(Budget("key", f"key:{key.id}", key.budget_usd, key.budget_period))
        config = self._config
        if principal.user is not None:
            user = config.users.get(principal.user, config.user)
            if user is not None:
                found.append(_budget("user", principal.user, user))
        if principal.team is not None:
            team = config.teams.get(principal.team, config.team)
            if team is not None:
                found.append(_budget("team", principal.team, team))
        return found

    async def admit(
        self, budgets: list[Budget], amount: Decimal | None, reserved: Reserved
    ) -> None:
        """Reserve `amount` (the most the request can cost; None: nothing) against each budget,
        appending to `reserved` (the caller gives it back with `unreserve`, also when this
        raises), then refuse the request if a budget is used up or committed."""
        before = self.reserve(budgets, amount, reserved)
        for budget, held in zip(budgets, before, strict=True):
            await self._check(budget, held)

    def reserve(
        self, budgets: list[Budget], amount: Decimal | None, reserved: Reserved
    ) -> list[Decimal]:
        """Reserve `amount` against each budget (see `admit`); what was reserved before, per
        budget. Done before any await: a request admitted at the same time sees it."""
        return [self._reserve(budget, amount, reserved) for budget in budgets]

    def _reserve(self, budget: Budget, amount: Decimal | None, reserved: Reserved) -> Decimal:
        if amount is None or amount <= 0:
            return self._reservations.held(budget.key, budget.period)
        slot, before = self._reservations.reserve(budget.key, budget.period, amount)
        reserved.append((slot, amount))
        return before

    def unreserve(self, reserved: Reserved) -> None:
        for slot, amount in reserved:
            self._reservations.release(slot, amount)
        reserved.clear()

    async def charge(self, budgets: list[Budget], cost: Decimal) -> None:
        """Add `cost` to each budget's spend (SpendUnavailableError when Redis is down)."""
        for budget in budgets:
            self.charged(budget, await self._spend.add(budget.key, budget.period, cost), cost)

    def charged(self, budget: Budget, total: Decimal, cost: Decimal) -> None:
        """`cost` was added to `budget`'s spend, which is now `total`."""
        if self._on_spent is not None:
            window = period_window(budget.period, datetime.now(UTC))
            self._on_spent(budget, window, total - cost, total)

    async def _check(self, budget: Budget, reserved: Decimal) -> None:
        await self.seeded(budget)
        try:
            spent = await self._spend.spent(budget.key, budget.period)
        except SpendUnavailableError:
            self.unavailable(budget)
            return
        self.judge(budget, spent, reserved)

    def unavailable(self, budget: Budget) -> None:
        """The spend cannot be read: 503 when failing closed, else the check is skipped."""
        if self._fail_closed:
            raise ServiceUnavailableError(
                "Budgets cannot be checked: the shared spend counters (Redis) are "
                "unreachable. Retry shortly."
            ) from None
        log.warning("budget_check_skipped", scope=budget.scope, reason="redis_unreachable")

    def judge(self, budget: Budget, spent: Decimal, reserved: Decimal) -> None:
        """Refuse when the spend has reached the budget (402), or would with what the requests
        in flight before this one have reserved (429: they may cost less; retry shortly)."""
        if spent >= budget.usd:
            self._metrics.rate_limited.labels("budget", budget.scope, "refused").inc()
            if budget.period == "total":
                after = "It does not reset; an administrator can raise it."
            else:
                after = (
                    f"It resets at the start of the next {budget.period} (UTC); an "
                    "administrator can raise it."
                )
            raise BudgetExceededError(
                f"The {budget.scope}'s budget of {budget.usd} USD {_per(budget.period)} is used "
                f"up (spent {spent.normalize():f} USD). {after}"
            )
        if spent + reserved >= budget.usd:
            self._metrics.rate_limited.labels("budget", budget.scope, "refused").inc()
            raise RateLimitError(
                f"The {budget.scope}'s budget of {budget.usd} USD {_per(budget.period)} is "
                f"committed: {spent.normalize():f} USD spent and up to "
                f"{reserved.normalize():f} USD reserved by requests in flight. Retry when they "
                "finish.",
                code="budget_reserved",
                headers={"retry-after": "1"},
            )

    async def seeded(self, budget: Budget) -> None:
        """Once per scope kind and period: counters start from the recorded spend."""
        if self._spend_source is None:
            return
        start, _ = period_window(budget.period, datetime.now(UTC))
        mark = (budget.scope, budget.period, start)
        task = self._seeding.get(mark)
        if task is None:
            task = asyncio.ensure_future(self._seed(mark))
            self._seeding[mark] = task
        await asyncio.shield(task)  # a caller that goes away does not cancel the others' seed

    async def _seed(self, mark: tuple[BudgetScope, Period, datetime]) -> None:
        scope, period, start = mark
        assert self._spend_source is not None
        try:
            totals = await self._spend_source(scope, start, datetime.now(UTC))
            for name, amount in totals.items():
                await self._spend.seed(f"{scope}:{name}", period, amount)
        except (StoreUnavailableError, SpendUnavailableError) as exc:
            del self._seeding[mark]  # the next request tries again
            log.warning("budget_seed_failed", scope=scope, error=type(exc).__name__)


def _budget(scope: BudgetScope, name: str, config: BudgetConfig) -> Budget:
    return Budget(scope, f"{scope}:{name}", config.usd, config.period)
