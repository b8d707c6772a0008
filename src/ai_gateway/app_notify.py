"""App assembly, the notifications part: builds the notifier from the `notifications:` section
(channels, Redis or local claims) and the watches that turn what the gateway sees into events,
and hands out the callbacks that the breaker, the upstream attempts and admission call. With
notifications off, every callback is None (or the one given) and nothing is built: no cost on the
hot path."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from redis.asyncio import Redis

from ai_gateway.api.common import BodyLimit
from ai_gateway.api.notifications import NotificationsAPI
from ai_gateway.notify.channels import (
    Channel,
    EmailSender,
    HTTPPoster,
    SlackSender,
    WebhookSender,
)
from ai_gateway.notify.config import EmailChannel, NotificationsConfig, SlackChannel
from ai_gateway.notify.dedupe import Claims, LocalClaims, RedisClaims
from ai_gateway.notify.events import circuit_changed
from ai_gateway.notify.expiry import KeyExpiryCheck
from ai_gateway.notify.metrics import NotifyMetrics
from ai_gateway.notify.sender import Notifier
from ai_gateway.notify.watches import AttemptWatch, BudgetWatch, RefusalWatch
from ai_gateway.observability.metrics import Metrics
from ai_gateway.pipeline.attempts import AttemptWatch as OnAttempt
from ai_gateway.routing.breaker import BreakerState
from ai_gateway.routing.deployments import Deployment
from ai_gateway.security.admission import RefusalWatch as OnRefused
from ai_gateway.security.budget_gate import Budget, SpendWatch
from ai_gateway.stores.security import SecurityStore

BreakerChange = Callable[[str, BreakerState], None]


def channels_of(config: NotificationsConfig, http: HTTPPoster) -> dict[str, Channel]:
    made: dict[str, Channel] = {}
    for name, spec in config.channels.items():
        if isinstance(spec, EmailChannel):
            made[name] = EmailSender(name, spec)
        elif isinstance(spec, SlackChannel):
            made[name] = SlackSender(name, spec, http)
        else:
            made[name] = WebhookSender(name, spec, http)
    return made


@dataclass
class Notify:
    config: NotificationsConfig
    notifier: Notifier | None
    http: HTTPPoster | None
    api: NotificationsAPI
    on_attempt: OnAttempt | None = None
    on_refused: OnRefused | None = None
    on_spent: SpendWatch | None = None
    expiry: KeyExpiryCheck | None = None

    def breaker_callback(self, metrics: BreakerChange) -> BreakerChange:
        """`metrics` (the breaker's existing callback), plus circuit events when on."""
        notifier = self.notifier
        if notifier is None or not (
            notifier.wants("circuit.opened") or notifier.wants("circuit.closed")
        ):
            return metrics

        def changed(deployment: str, state: BreakerState) -> None:
            metrics(deployment, state)
            if state is not BreakerState.HALF_OPEN:
                notifier.emit(
                    circuit_changed(deployment=deployment, opened=state is BreakerState.OPEN)
                )

        return changed

    async def start(self, keys: SecurityStore | None) -> None:
        notifier = self.notifier
        if notifier is None:
            return
        await notifier.start()
        if keys is not None and notifier.wants("key.expiring"):
            self.expiry = KeyExpiryCheck(keys, self.config.key_expiry, notifier.emit)
            await self.expiry.start()

    async def aclose(self) -> None:
        if self.expiry is not None:
            await self.expiry.aclose()
        if self.notifier is not None:
            await self.notifier.aclose()
        if self.http is not None:
            await self.http.aclose()


def build_notify(
    config: NotificationsConfig,
    redis_client: Redis | None,
    prefix: str,
    body: BodyLimit,
    metrics: Metrics,
) -> Notify:
    if not config.enabled:
        return Notify(config, None, None, NotificationsAPI(None, body))
    http = HTTPPoster()
    claims: Claims = (
        RedisClaims(redis_client, f"{prefix}:notify") if redis_client is not None else LocalClaims()
    )
    notifier = Notifier(config, channels_of(config, http), claims, metrics=NotifyMetrics(metrics))
    parts = Notify(config, notifier, http, NotificationsAPI(notifier, body))
    emit = notifier.emit
    if notifier.wants("errors.spike") or (
        notifier.wants("latency.slo") and config.latency.p95_ms is not None
    ):
        watch = AttemptWatch(config.errors, config.latency, emit)

        def on_attempt(deployment: Deployment, seconds: float, ok: bool) -> None:
            watch.attempt(deployment.id, deployment.group, deployment.provider, seconds, ok)

        parts.on_attempt = on_attempt
    if notifier.wants("ratelimit.exceeded"):
        parts.on_refused = RefusalWatch(config.ratelimit, emit).refused
    if notifier.wants("budget.threshold"):
        budgets = BudgetWatch(config.budget_thresholds, emit)

        def on_spent(
            budget: Budget,
            window: tuple[datetime, datetime | None],
            before: Decimal,
            after: Decimal,
        ) -> None:
            name = budget.key.partition(":")[2]
            budgets.spent(budget.scope, name, budget.usd, budget.period, window, before, after)

        parts.on_spent = on_spent
    return parts
