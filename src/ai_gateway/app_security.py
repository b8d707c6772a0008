"""App assembly, the security part: builds the key store, authentication, limits, budgets,
content rules, the admin API and CORS from the configuration, and puts them into the HTTP layer
and the pipeline (which is why this is assembly, not `security/`). `create_app` calls
`build_security` once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from redis.asyncio import Redis
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from ai_gateway.api.admin import AdminAPI
from ai_gateway.api.auth import AuthMiddleware
from ai_gateway.api.common import BodyLimit
from ai_gateway.observability.health import CheckResult, ReadinessCheck
from ai_gateway.observability.logging import get_logger
from ai_gateway.observability.metrics import Metrics
from ai_gateway.pipeline.guard import GuardrailSets
from ai_gateway.security.admission import Admission, RefusalWatch
from ai_gateway.security.admit_redis import RedisAdmitter
from ai_gateway.security.audit import AuditRecord
from ai_gateway.security.authenticator import Authenticator
from ai_gateway.security.budget import LocalSpendCounter, RedisSpendCounter, SpendCounter
from ai_gateway.security.budget_gate import BudgetScope, SpendSource, SpendWatch
from ai_gateway.security.jwt_auth import JWTVerifier
from ai_gateway.security.ratelimit import LocalRateLimiter, RateLimiter
from ai_gateway.security.ratelimit_redis import RedisRateLimiter
from ai_gateway.settings import Config
from ai_gateway.stores.analytics import AnalyticsStore, StoreUnavailableError
from ai_gateway.stores.redis_pipe import RedisPipe
from ai_gateway.stores.security import SecurityStore

log = get_logger(__name__)

AuditSink = Callable[[AuditRecord], None]


@dataclass
class Security:
    admission: Admission
    guardrails: GuardrailSets
    audit: AuditSink | None
    limiter: RateLimiter
    store: SecurityStore | None = None
    authenticator: Authenticator | None = None
    admin: AdminAPI | None = None
    middleware: list[Middleware] = field(default_factory=list)
    outer_middleware: list[Middleware] = field(default_factory=list)
    checks: list[ReadinessCheck] = field(default_factory=list)

    async def aclose(self) -> None:
        if self.authenticator is not None:
            await self.authenticator.aclose()
        await self.admission.aclose()
        await self.limiter.aclose()


def auth_enabled(config: Config) -> bool:
    return config.gateway.master_key is not None or config.security.jwt is not None


def needs_store(config: Config) -> bool:
    """Keys and the audit log live in the security store: needed with authentication on, or with
    content rules (whose blocks are audited)."""
    rules = config.security.guardrails
    return auth_enabled(config) or bool(rules.policies or rules.default or rules.models)


def spend_source(store: AnalyticsStore) -> SpendSource:
    """Spend per user, key or team since `start`, from the recorded usage: budgets survive a
    restart of a gateway without Redis."""

    async def totals(scope: BudgetScope, start: datetime, end: datetime) -> dict[str, Decimal]:
        rows = await store.usage(start, end, scope)
        return {
            str(row["group"]): Decimal(row["cost_usd"])
            for row in rows
            if row["group"] is not None and row["cost_usd"] is not None
        }

    return totals


def build_security(
    config: Config,
    metrics: Metrics,
    redis_client: Redis | None,
    store: SecurityStore | None,
    audit: AuditSink | None,
    analytics: AnalyticsStore | None,
    *,
    on_refused: RefusalWatch | None = None,
    on_spent: SpendWatch | None = None,
) -> Security:
    settings, security = config.gateway, config.security
    limits = security.rate_limits
    prefix = settings.redis_prefix
    local = LocalRateLimiter()
    limiter: RateLimiter = local
    checks: list[ReadinessCheck] = []
    admitter: RedisAdmitter | None = None
    if redis_client is not None:
        shared = RedisRateLimiter(
            redis_client, f"{prefix}:rl", limits.redis_failure, fallback=local
        )
        limiter = shared

        async def limiter_check() -> CheckResult:
            return shared.readiness()

        checks.append(
            ReadinessCheck("rate_limits", limits.redis_failure == "fail_closed", limiter_check)
        )
    spend: SpendCounter = LocalSpendCounter()
    if redis_client is not None:
        shared_spend = RedisSpendCounter(redis_client, f"{prefix}:spend")
        spend = shared_spend
        # A request's limits and budgets in one round trip, its settlement in one more, over a
        # pipelined connection of their own.
        assert settings.redis_url is not None
        pipe = RedisPipe(settings.redis_url.get_secret_value())
        admitter = RedisAdmitter(pipe, shared, shared_spend)
    admission = Admission(
        security,
        limiter,
        spend,
        metrics,
        lease_ttl_s=settings.request_timeout_s + 60,
        spend_source=spend_source(analytics) if analytics is not None else None,
        on_refused=on_refused,
        on_spent=on_spent,
        shared=admitter,
    )
    parts = Security(
        admission=admission,
        guardrails=GuardrailSets(security.guardrails),
        audit=audit,
        limiter=limiter,
        store=store,
        checks=checks,
    )
    cors = security.cors
    if cors.allow_origins:
        parts.outer_middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(cors.allow_origins),
                allow_methods=list(cors.allow_methods),
                allow_headers=list(cors.allow_headers),
                expose_headers=list(cors.expose_headers),
                allow_credentials=cors.allow_credentials,
                max_age=cors.max_age_s,
            )
        )
    if not auth_enabled(config):
        return parts
    master = settings.master_key.get_secret_value() if settings.master_key else None
    jwt = JWTVerifier(security.jwt) if security.jwt is not None else None
    authenticator = Authenticator(master, store, jwt, key_cache_ttl_s=security.key_cache_ttl_s)
    parts.authenticator = authenticator
    parts.middleware.append(
        Middleware(AuthMiddleware, authenticator=authenticator, metrics=metrics, audit=audit)
    )
    if store is not None and audit is not None:
        parts.admin = AdminAPI(
            store,
            audit,
            authenticator.forget,
            parts.guardrails.names,
            BodyLimit(settings.max_body_bytes, settings.body_timeout_s),
        )
    return parts


async def start_store(store: SecurityStore | None) -> None:
    if store is None:
        return
    try:
        await store.start()
    except StoreUnavailableError as exc:
        # Start anyway: key checks answer 503 until the database is back.
        log.warning("security_store_unavailable_at_start", error=str(exc))
