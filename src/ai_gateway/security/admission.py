"""The rate-limit and budget stage: admit a request (or refuse it with 429 / 402 / 503), and
settle it when it ends (release its concurrency leases, charge its tokens and its cost).

Scopes, each with its own limits: the virtual key (its own settings), the user (the configured
default, 10 requests/s, or a per-user entry), the team, and the model (everyone's requests for
that model name together). The master key is the operator's: no user, key or team limit applies
to it (model limits do). With authentication off there is no user: only model limits apply.
Every model a request calls takes a request from that model's limits: each branch of a fan-out
(at admission, as a whole), and each fallback the router moves to (`admit_model`, into the
same ticket); the caller's scopes count the request once.

Budgets (key, user, team; security/budget_gate.py) are checked before the request starts: it
is refused (402) while the period's spend has reached the budget, or (429 budget_reserved)
while the spend plus what the requests in flight before it reserved has. It reserves the most
it can cost until it is settled, when its real cost is charged. So one instance overshoots a
budget by less than one request's cost; docs/security.md gives the figures and tests check
them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal

from ai_gateway.errors import (
    InvalidRequestError,
)
from ai_gateway.observability.logging import get_logger
from ai_gateway.observability.metrics import Metrics
from ai_gateway.request_info import RequestInfo
from ai_gateway.security.admit_redis import (
    Check,
    LeaseCheck,
    RateCheck,
    RedisAdmitter,
    SpendCheck,
    TokenCheck,
)
from ai_gateway.security.budget import (
    SpendCounter,
    SpendUnavailableError,
)
from ai_gateway.security.budget_gate import Budget, BudgetGate, SpendSource, SpendWatch
from ai_gateway.security.config import (
    LimitConfig,
    SecurityConfig,
    default_burst,
)
from ai_gateway.security.keys import ApiKey
from ai_gateway.security.principal import Principal
from ai_gateway.security.ratelimit import Decision, LimiterUnavailableError, Rate, RateLimiter
from ai_gateway.security.tickets import (
    Limits,
    Ticket,
    limiter_unavailable,
    rate_of,
    record,
    refusal,
)

log = get_logger(__name__)
# Told of each refusal by a limit: the scope ("key", "user", "team", "model"), the limiter's key
# ("key:k1") and the limit ("rps", "tpm", "concurrency").
RefusalWatch = Callable[[str, str, str], None]


class Admission:
    def __init__(
        self,
        config: SecurityConfig,
        limiter: RateLimiter,
        spend: SpendCounter,
        metrics: Metrics,
        *,
        lease_ttl_s: float,
        spend_source: SpendSource | None = None,
        on_refused: RefusalWatch | None = None,
        on_spent: SpendWatch | None = None,
        shared: RedisAdmitter | None = None,
    ) -> None:
        """`spend_source`: where the spend of a period so far is read when a counter for it
        does not exist yet (after a restart without Redis): the analytics store. `on_refused`
        and `on_spent` are told of refusals and charges (notifications). `shared`: with Redis,
        every check of a request in one round trip and its settlement in one more."""
        limits = config.rate_limits
        self._on_refused = on_refused
        self._limiter = limiter
        self._shared = shared
        self._settling: set[asyncio.Future[None]] = set()  # settlements awaiting Redis's answer
        self._metrics = metrics
        self._lease_ttl_s = lease_ttl_s
        self._fail_closed = limits.redis_failure == "fail_closed"
        self._budgets = BudgetGate(
            config.budgets,
            spend,
            metrics,
            fail_closed=self._fail_closed,
            spend_source=spend_source,
            on_spent=on_spent,
        )
        self._user_default = limits.user
        self._user_limits = dict(limits.users)
        self._team_default = limits.team
        self._team_limits = dict(limits.teams)
        self._model_limits = {
            name: self._limits("model", f"model:{name}", spec)
            for name, spec in limits.models.items()
            if not spec.empty
        }
        self._cache: dict[tuple[str, str], Limits | None] = {}
        # Lease ids are the gateway's own: a client-chosen request id could repeat on purpose.
        self._lease_prefix = os.urandom(8).hex()
        self._lease_counter = itertools.count(1)

    @staticmethod
    def _limits(scope: str, key: str, spec: LimitConfig) -> Limits:
        return Limits(scope, key, rate_of(spec), spec.tpm, spec.max_concurrent)

    def _scoped(self, scope: str, name: str, spec: LimitConfig | None) -> Limits | None:
        if (scope, name) in self._cache:
            return self._cache[(scope, name)]
        made = None if spec is None or spec.empty else self._limits(scope, f"{scope}:{name}", spec)
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[(scope, name)] = made
        return made

    def _key_limits(self, key: ApiKey) -> Limits | None:
        if key.rps is None and key.tpm is None and key.max_concurrent is None:
            return None
        # A key's limits never change (a key is not edited, only revoked or rotated).
        cached = self._cache.get(("key", key.id))
        if cached is not None:
            return cached
        rate = Rate(key.rps, key.burst or default_burst(key.rps)) if key.rps else None
        made = Limits("key", f"key:{key.id}", rate, key.tpm, key.max_concurrent)
        self._cache[("key", key.id)] = made
        return made

    def _applicable(self, principal: Principal | None, models: Sequence[str]) -> list[Limits]:
        found: list[Limits] = []
        if principal is not None and not principal.admin:
            if principal.key is not None:
                limits = self._key_limits(principal.key)
                if limits is not None:
                    found.append(limits)
            if principal.user is not None:
                spec = self._user_limits.get(principal.user, self._user_default)
                limits = self._scoped("user", principal.user, spec)
                if limits is not None:
                    found.append(limits)
            if principal.team is not None:
                team = self._team_limits.get(principal.team, self._team_default)
                limits = self._scoped("team", principal.team, team)
                if limits is not None:
                    found.append(limits)
        # Every model the request calls is a request for that model (each branch of a fan-out,
        # the same name twice included): each takes a request and a concurrency slot from its
        # model's limits. Its token budget is checked and charged once per request.
        for model in models:
            model_limits = self._model_limits.get(model)
            if model_limits is not None:
                found.append(model_limits)
        return found

    def _at_once(self, models: Sequence[str]) -> None:
        """A request that calls one model more times than its limits admit at once (its burst,
        its concurrency) could never be admitted: 400, not a 429 that a retry cannot cure."""
        if len(models) < 2:
            return
        for model, count in Counter(models).items():
            limits = self._model_limits.get(model)
            if limits is None or count < 2:
                continue
            caps = [limits.rate.burst] if limits.rate is not None else []
            if limits.max_concurrent is not None:
                caps.append(limits.max_concurrent)
            if caps and count > min(caps):
                raise InvalidRequestError(
                    f"This request calls model {model!r} {count} times at once, but its limits "
                    f"admit at most {min(caps)} requests for it at once. Name it at most "
                    f"{min(caps)} times in 'models'.",
                    param="models",
                    code="too_many_model_calls",
                )

    # --- the stage -----------------------------------------------------------------------------

    def may_apply(self, principal: Principal | None, models: Sequence[str]) -> bool:
        """False when `admit` would return None for certain (nobody identified, as with
        authentication off, or the master key; and no model limits, which a fallback could
        need): then it need not be awaited at all."""
        return (principal is not None and not principal.admin) or bool(self._model_limits)

    async def admit(
        self,
        principal: Principal | None,
        models: Sequence[str],
        info: RequestInfo,
        estimate: Callable[[], Decimal | None] | None = None,
    ) -> Ticket | None:
        """Admit a request that calls `models` (one name; a fan-out's branches) as a whole, or
        refuse it before anything is sent. The caller's scopes count it once; each model's
        limits count each call of that model. `estimate`: the most the request can cost
        (called only under a budget), reserved against each budget until it is settled. None
        when nothing applies (the common unlimited case costs a few dict lookups)."""
        self._at_once(models)
        limits = self._applicable(principal, models)
        budgets = self._budgets.of(principal)
        if not limits and not budgets and not self._model_limits:
            return None  # (with model limits, a fallback may need the ticket: admit_model)
        ticket = Ticket()
        try:
            if self._shared is not None:
                await self._admit_shared(self._shared, limits, budgets, estimate, ticket)
            else:
                for scoped in limits:
                    await self._check(scoped, ticket, self._limiter)
                if budgets:
                    amount = estimate() if estimate is not None else None
                    await self._budgets.admit(budgets, amount, ticket.reserved)
            ticket.budgets = budgets
        except BaseException:
            self._budgets.unreserve(ticket.reserved)
            await self._release(ticket)
            raise
        # Under a budget only priced models may be used, and a stream cut before its usage is
        # counted (pipeline/call.py): what is charged must be known.
        info.priced_only = bool(ticket.budgets)
        info.metered = bool(ticket.budgets or ticket.token_scopes)
        return ticket

    async def admit_model(self, ticket: Ticket, model: str, info: RequestInfo) -> None:
        """Take one more request for `model` from its limits into `ticket`, which settles it
        with the rest (a request moving to a fallback); RateLimitError when they refuse it."""
        limits = self._model_limits.get(model)
        if limits is None:
            return
        if self._shared is not None:
            await self._admit_shared(self._shared, [limits], [], None, ticket)
        else:
            await self._check(limits, ticket, self._limiter)

    async def _admit_shared(
        self,
        shared: RedisAdmitter,
        limits: list[Limits],
        budgets: list[Budget],
        estimate: Callable[[], Decimal | None] | None,
        ticket: Ticket,
    ) -> None:
        """Every limit and budget in one Redis round trip, all or nothing (admit_redis.py)."""
        held: list[Decimal] = []
        if budgets:
            amount = estimate() if estimate is not None else None
            held = self._budgets.reserve(budgets, amount, ticket.reserved)
            for budget in budgets:
                await self._budgets.seeded(budget)
        checks: list[Check] = []
        owners: list[tuple[Limits, str, str]] = []  # (scope, kind, lease id) per limit check
        for scoped in limits:
            if scoped.rate is not None:
                checks.append(RateCheck(scoped.key, scoped.rate))
                owners.append((scoped, "rps", ""))
            if scoped.tpm is not None:
                checks.append(TokenCheck(scoped.key, scoped.tpm))
                owners.append((scoped, "tpm", ""))
            if scoped.max_concurrent is not None:
                lease_id = self._lease_id()
                checks.append(
                    LeaseCheck(scoped.key, scoped.max_concurrent, lease_id, self._lease_ttl_s)
                )
                owners.append((scoped, "concurrency", lease_id))
        for budget, before in zip(budgets, held, strict=True):
            checks.append(SpendCheck(budget.key, budget.period, budget.usd, before))
        verdict = await shared.admit(checks)
        if verdict is None:  # Redis cannot answer: the failure mode decides
            if self._fail_closed and limits:
                raise limiter_unavailable()
            for scoped in limits:
                await self._check(scoped, ticket, shared.limiter.fallback)
            for budget in budgets:
                self._budgets.unavailable(budget)
            return
        if verdict.refused is not None:
            index = verdict.refused
            decision = verdict.decisions[index]
            if index < len(owners):
                assert isinstance(decision, Decision)
                scoped, kind, _ = owners[index]
                self._refuse_unless(decision, kind, scoped)
            else:
                assert isinstance(decision, Decimal)
                budget = budgets[index - len(owners)]
                self._budgets.judge(budget, decision, held[index - len(owners)])
            raise AssertionError("the script refused what the gateway admits")  # unreachable
        for (scoped, kind, lease_id), decision in zip(owners, verdict.decisions, strict=False):
            assert isinstance(decision, Decision)
            self._take(scoped, kind, decision, ticket, lease_id)

    async def _check(self, scoped: Limits, ticket: Ticket, limiter: RateLimiter) -> None:
        """One scope's limits, one call each (the in-process limiter, or Redis's per check)."""
        try:
            if scoped.rate is not None:
                decision = await limiter.hit(scoped.key, scoped.rate)
                self._take(scoped, "rps", decision, ticket)
            if scoped.tpm is not None:
                decision = await limiter.check_tokens(scoped.key, scoped.tpm)
                self._take(scoped, "tpm", decision, ticket)
            if scoped.max_concurrent is not None:
                lease_id = self._lease_id()
                decision = await limiter.acquire(
                    scoped.key, scoped.max_concurrent, lease_id, self._lease_ttl_s
                )
                self._take(scoped, "concurrency", decision, ticket, lease_id)
        except LimiterUnavailableError:
            raise limiter_unavailable() from None

    def _lease_id(self) -> str:
        return f"{self._lease_prefix}{next(self._lease_counter):x}"

    def _take(
        self, scoped: Limits, kind: str, decision: Decision, ticket: Ticket, lease_id: str = ""
    ) -> None:
        """Refuse the request on a refusal, else record what the ticket now holds."""
        self._refuse_unless(decision, kind, scoped)
        record(scoped, kind, decision, ticket, lease_id)

    def _refuse_unless(self, decision: Decision, kind: str, scoped: Limits) -> None:
        if decision.allowed:
            return
        self._metrics.rate_limited.labels(kind, scoped.scope, "refused").inc()
        if self._on_refused is not None:
            self._on_refused(scoped.scope, scoped.key, kind)
        raise refusal(decision, kind, scoped)

    # --- settling ------------------------------------------------------------------------------

    async def settle(self, ticket: Ticket | None, info: RequestInfo) -> None:
        """Release the request's leases and charge what it used. Never raises: a failed charge is
        logged (the request is over; refusing anything now would help nobody). A ticket is
        settled once; later calls do nothing."""
        if ticket is None or ticket.settled:
            return
        ticket.settled = True
        if self._shared is not None:
            self._settle_shared(self._shared, ticket, info)
            return
        await self._release(ticket)
        try:
            if info.total_tokens > 0:
                for key, tpm in ticket.token_scopes:
                    await self._limiter.charge_tokens(key, tpm, info.total_tokens)
            cost = info.cost_usd
            if cost is not None and cost > 0:
                await self._budgets.charge(ticket.budgets, cost)
        except (LimiterUnavailableError, SpendUnavailableError) as exc:
            log.warning("usage_not_charged", request_id=info.request_id, error=type(exc).__name__)
        finally:
            # After the charge: the cost always counts, as spend or as a reservation.
            self._budgets.unreserve(ticket.reserved)

    def _settle_shared(self, shared: RedisAdmitter, ticket: Ticket, info: RequestInfo) -> None:
        """Leases, tokens and spend in one script (nothing to send: none), queued now; the
        request does not wait for its answer. The reservation is given back as soon as the
        script is queued: every later admission of this instance goes over the same connection
        after it, so Redis counts the cost as spend before it checks them (admit_redis.py)."""
        leases, ticket.leases = ticket.leases, []
        fallback = shared.limiter.fallback
        for key, lease_id in leases:  # a lease taken while Redis was down lives here
            fallback.release_now(key, lease_id)
        used = info.total_tokens
        tokens = [(key, tpm, used) for key, tpm in ticket.token_scopes] if used > 0 else []
        cost = info.cost_usd if info.cost_usd is not None and info.cost_usd > 0 else None
        spends = [(b.key, b.period, cost) for b in ticket.budgets] if cost is not None else []
        try:
            if not (leases or tokens or spends):
                return
            answer = shared.settle(leases, tokens, spends)
            if answer is not None:
                task = asyncio.ensure_future(self._settled(answer, ticket, info, cost))
                self._settling.add(task)
                task.add_done_callback(self._settling.discard)
                return
            self._not_settled(shared, tokens, bool(spends), info)
        finally:
            self._budgets.unreserve(ticket.reserved)

    async def _settled(
        self,
        answer: Awaitable[list[Decimal] | None],
        ticket: Ticket,
        info: RequestInfo,
        cost: Decimal | None,
    ) -> None:
        totals = await answer
        if totals is None:
            assert self._shared is not None
            used = info.total_tokens
            tokens = [(key, tpm, used) for key, tpm in ticket.token_scopes] if used > 0 else []
            self._not_settled(self._shared, tokens, cost is not None, info)
            return
        if cost is not None:
            for budget, total in zip(ticket.budgets, totals, strict=True):
                self._budgets.charged(budget, total, cost)

    def _not_settled(
        self,
        shared: RedisAdmitter,
        tokens: list[tuple[str, int, int]],
        spends: bool,
        info: RequestInfo,
    ) -> None:
        """Redis did not take the settlement: leases expire by themselves; tokens are charged
        locally when failing open (as the checks then are); the spend cannot be."""
        if not self._fail_closed:
            for key, tpm, count in tokens:
                shared.limiter.fallback.charge_tokens_now(key, tpm, count)
        if spends or (tokens and self._fail_closed):
            log.warning("usage_not_charged", request_id=info.request_id, error="redis")

    async def aclose(self) -> None:
        """Wait (up to 5 s) for the settlements still on their way to Redis, then close the
        connection they use."""
        if self._settling:
            await asyncio.wait(list(self._settling), timeout=5.0)
        if self._shared is not None:
            await self._shared.aclose()

    async def _release(self, ticket: Ticket) -> None:
        leases, ticket.leases = ticket.leases, []
        for key, lease_id in leases:
            with contextlib.suppress(LimiterUnavailableError):  # the lease expires by itself
                await self._limiter.release(key, lease_id)
