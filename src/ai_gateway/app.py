"""create_app(config): wires the stores, adapters, pipeline and routes; nothing global."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from ai_gateway.api.analytics_routes import analytics_endpoints
from ai_gateway.api.cache_admin import CacheAdminAPI
from ai_gateway.api.chat import CompletionsAPI
from ai_gateway.api.common import BodyLimit, JSONResponse
from ai_gateway.api.dashboard import DashboardAPI
from ai_gateway.api.health import HealthAPI
from ai_gateway.api.messages import MessagesAPI
from ai_gateway.api.middleware import RequestContextMiddleware
from ai_gateway.api.models import ModelsAPI, build_model_cards
from ai_gateway.api.openapi import build_openapi
from ai_gateway.api.paths import ExactPathRouter
from ai_gateway.api.routes import Handlers, gateway_routes
from ai_gateway.api.tokens import TokensAPI
from ai_gateway.api.ws import WebSocketAPI
from ai_gateway.api.ws_endpoints import SocketEndpoints
from ai_gateway.app_analytics import analytics_writer, writer_readiness_check
from ai_gateway.app_cache import cache_store, semantic_lookup
from ai_gateway.app_chains import build_chains
from ai_gateway.app_codegen import code_api
from ai_gateway.app_context import block_counter, context_stage, model_window
from ai_gateway.app_errors import exception_handlers
from ai_gateway.app_hooks import build_hooks
from ai_gateway.app_notify import build_notify
from ai_gateway.app_prompts import build_prompts
from ai_gateway.app_rag import build_rag
from ai_gateway.app_responses import build_responses
from ai_gateway.app_security import build_security, needs_store, start_store
from ai_gateway.demo import DEMO_HEADER
from ai_gateway.model_registry import ModelRegistry, load_default_registry
from ai_gateway.observability.health import CheckResult, ReadinessCheck
from ai_gateway.observability.logging import get_logger
from ai_gateway.observability.metrics import Metrics
from ai_gateway.observability.tracing import Tracing, tracing_from_env
from ai_gateway.pipeline.admit import Admit
from ai_gateway.pipeline.attempts import Attempts
from ai_gateway.pipeline.cache import Cache
from ai_gateway.pipeline.call import Call
from ai_gateway.pipeline.chains import Chains, Stages
from ai_gateway.pipeline.charges import Charges
from ai_gateway.pipeline.fanout import Fanout
from ai_gateway.pipeline.guard import Guard
from ai_gateway.pipeline.record import Record
from ai_gateway.providers.egress import EgressProxies
from ai_gateway.providers.local import local_models_installed
from ai_gateway.providers.registry import ProviderRegistry
from ai_gateway.routing.breaker import CircuitBreaker
from ai_gateway.routing.breaker_redis import RedisBreakerStore
from ai_gateway.routing.context_window import ContextWindowManager
from ai_gateway.routing.deployments import DeploymentTable
from ai_gateway.routing.router import Router
from ai_gateway.routing.stats import DeploymentStats
from ai_gateway.routing.usage import LocalUsageWindow, RedisUsageWindow
from ai_gateway.serving import drain_on_signals
from ai_gateway.settings import Config, ConfigError
from ai_gateway.stores.analytics import StoreUnavailableError
from ai_gateway.stores.factory import open_analytics_store, open_security_store
from ai_gateway.stores.redis import create_redis, redis_readiness_check
from ai_gateway.streaming.drain import STATE_KEY, Drain, StreamPolicy
from ai_gateway.usage.recorder import UsageRecorder
from ai_gateway.usage.tokens import TokenCounter
from ai_gateway.usage.writer_metrics import WriterMetrics

log = get_logger(__name__)


@dataclass(frozen=True)
class Gateway:
    """The app's parts, reachable as `app.state.gateway` (for the CLI's start-up log and tests)."""

    config: Config
    deployments: DeploymentTable
    providers: ProviderRegistry
    registry: ModelRegistry
    metrics: Metrics
    chains: Chains
    breaker: CircuitBreaker


def create_app(
    config: Config,
    registry: ModelRegistry | None = None,
    tracing: Tracing | Literal["environment"] | None = "environment",
) -> Starlette:
    """`tracing`: "environment" configures it from the standard OTEL_* variables (off when they
    name no exporter); tests pass a `Tracing` with an in-memory exporter, or None."""
    settings = config.gateway
    if tracing == "environment":
        tracing = tracing_from_env(settings)
    registry = registry or load_default_registry()
    if config.registry:
        try:
            registry = registry.with_overrides(config.registry)
        except ValueError as exc:
            raise ConfigError(f"{config.source}: registry: {exc}") from None
    counter = TokenCounter()
    providers = ProviderRegistry.from_settings(
        settings,
        registry,
        counter,
        tracing,
        prompt_caching=config.cache.prompt_caching,
        egress=EgressProxies.from_environ(),  # HTTPS_PROXY, HTTP_PROXY, NO_PROXY
    )
    deployments = DeploymentTable.from_config(config, available=providers.names)
    metrics = Metrics()
    redis_client = (
        create_redis(settings.redis_url.get_secret_value()) if settings.redis_url else None
    )
    body = BodyLimit(settings.max_body_bytes, settings.body_timeout_s)
    notify = build_notify(config.notifications, redis_client, settings.redis_prefix, body, metrics)
    breaker = CircuitBreaker(
        config.router.breaker,
        shared=(
            RedisBreakerStore(redis_client, prefix=f"{settings.redis_prefix}:breaker")
            if redis_client is not None
            else None
        ),
        on_change=notify.breaker_callback(
            lambda deployment, state: metrics.breaker_changed(deployment, state.value)
        ),
        probe_timeout_s=config.router.timeout_s,
    )
    router = Router(
        deployments,
        config.router,
        stats=DeploymentStats(),
        breaker=breaker,
        windows=ContextWindowManager(counter, registry, config.router.reserve_output_tokens),
        registry=registry,
        metrics=metrics,
        attempt_timeout_s=settings.request_timeout_s,
        usage=(
            RedisUsageWindow(redis_client, prefix=f"{settings.redis_prefix}:usage")
            if redis_client is not None
            else LocalUsageWindow()
        ),
    )
    store = open_analytics_store(settings) if settings.analytics_enabled else None
    keys = open_security_store(settings) if needs_store(config) else None
    writer_metrics = WriterMetrics(metrics)
    writer = (
        analytics_writer(
            settings,
            store,
            audit=keys,
            on_drop=writer_metrics.on_drop,
            on_written=writer_metrics.on_written,
            on_state=writer_metrics.on_state,
        )
        if store is not None or keys is not None
        else None
    )
    if writer is not None:
        writer_metrics.watch(writer)
    hooks = build_hooks(config, metrics)
    recorder = UsageRecorder(
        registry, metrics, sink=hooks.sink(writer if store is not None else None), counter=counter
    )
    security = build_security(
        config,
        metrics,
        redis_client,
        keys,
        writer.submit_audit if writer is not None and keys is not None else None,
        store,
        on_refused=notify.on_refused,
        on_spent=notify.on_spent,
    )
    charges = Charges(deployments, recorder)
    record = Record(recorder)
    attempts = Attempts(providers, metrics, tracing, on_attempt=notify.on_attempt)
    call = Call(router, attempts, charges, recorder)
    semantic = semantic_lookup(config, call)
    cache = Cache(config.cache, cache_store(config, redis_client), metrics, semantic)
    context = context_stage(config, deployments, registry, counter, metrics)
    rag = build_rag(config, call, block_counter(counter), model_window(deployments, registry), body)
    prompts = build_prompts(config, redis_client, body)
    chains = Chains.build(
        Stages(
            record=record,
            prompt=prompts.stage,
            admit=Admit(security.admission, charges),
            fanout=Fanout(record),
            guard=Guard(security.guardrails, metrics, security.audit),
            hooks=hooks.stage,
            cache=cache,
            context=context,
            retrieve=rag.stage,
            call=call,
        )
    )
    gateway = Gateway(config, deployments, providers, registry, metrics, chains, breaker)
    chain_parts = build_chains(config, redis_client, chains, body, metrics)

    completions = CompletionsAPI(chains, config.security.request_limits, body, metrics)
    tokens = TokensAPI(deployments, counter, body)
    models = ModelsAPI(
        build_model_cards(
            deployments,
            registry,
            local_installed=local_models_installed(),
            demo=config.demo_upstream is not None,
        )
    )

    async def providers_check() -> CheckResult:
        # The built-in local embedding model alone does not make a gateway worth routing to.
        count = len(deployments.groups)
        direct = [p for p in deployments.direct_providers if p != "local"]
        if count or direct:
            return CheckResult(True, f"{count} model names; direct providers: {list(direct)}")
        return CheckResult(
            False,
            "no provider is configured: set OPENAI_API_KEY, ANTHROPIC_API_KEY or GEMINI_API_KEY, "
            "or list models in a config file",
        )

    checks = [ReadinessCheck("providers", True, providers_check), breaker.readiness_check()]
    if redis_client is not None:
        checks.append(redis_readiness_check(redis_client))
    checks += security.checks
    if writer is not None:
        checks.append(writer_readiness_check(writer, store, settings.analytics_buffer))
    drain = Drain(settings.drain_timeout_s)
    streams = StreamPolicy(config.streaming.keepalive_interval_s, drain)
    health = HealthAPI(checks, metrics, drain)
    openapi = JSONResponse(build_openapi()).body

    async def openapi_json(request: Request) -> Response:
        return Response(openapi, media_type="application/json")

    code = code_api(config, chains, body, metrics, prompts.catalog)
    responses = build_responses(config, chains, body, metrics)
    table = gateway_routes(
        Handlers(
            completions=completions,
            models=models,
            tokens=tokens,
            health=health,
            openapi=openapi_json,
            analytics=analytics_endpoints(store, writer if store is not None else None, body),
            dashboard=DashboardAPI(),
            admin=security.admin,
            cache_admin=CacheAdminAPI(cache.clear),
            prompts=prompts.api,
            code=code,
            chains=chain_parts.api,
            vector_stores=rag.api,
            ws=WebSocketAPI(
                config.websocket,
                SocketEndpoints(chains, config.security.request_limits, code),
                metrics,
                drain,
            ),
            notifications=notify.api,
            responses=responses.api,
            responses_ws=responses.socket,
            messages=MessagesAPI(
                chains, config.security.request_limits, body, metrics, deployments, counter
            ),
        )
    )

    middleware = [
        *security.outer_middleware,  # CORS: preflights are answered before authentication
        Middleware(
            RequestContextMiddleware,
            metrics=metrics,
            routes=table,
            tracing=tracing,
            access_log=settings.access_log,
            extra_headers=(DEMO_HEADER,) if config.demo_upstream else (),
        ),
        *security.middleware,  # authentication, and the admin boundary
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        await breaker.start()
        if store is not None:
            try:
                await store.start()
            except StoreUnavailableError as exc:
                # Start anyway: records wait in the writer's buffer until the store is back.
                log.warning("analytics_store_unavailable_at_start", error=str(exc))
        await start_store(keys)
        await prompts.start()
        await chain_parts.start()
        await rag.start()
        await responses.start()
        if writer is not None:
            await writer.start()
        await hooks.start()
        await notify.start(keys)
        restore_signals = drain_on_signals(drain)
        try:
            # Lifespan state: in every request's scope, for the SSE responses and the server's
            # protocol (keep-alive interval, drain).
            yield {STATE_KEY: streams}
        finally:
            restore_signals()
            drain.close()
            await cache.aclose()  # entries being stored
            await notify.aclose()  # events queued and being sent, for up to 5 s
            await context.aclose()  # exchanges being given to the Memory service
            await hooks.aclose()  # records being given to on_record hooks, before the writer's
            if semantic is not None:
                await semantic.aclose()
            if writer is not None:
                await writer.aclose(30)  # uvicorn has drained the requests: flush every record
            if store is not None:
                await store.aclose()
            if keys is not None:
                await keys.aclose()
            await prompts.aclose()
            await chain_parts.aclose()
            await rag.aclose()  # ingestion stops; files under way resume after a restart
            await responses.aclose()
            await security.aclose()
            await breaker.aclose()
            await providers.aclose()
            if tracing is not None:
                await tracing.aclose()  # flushes the span exporters
            metrics.close()  # multiprocess mode: this worker's live gauges leave the sum
            if redis_client is not None:
                await redis_client.aclose()

    app = Starlette(
        routes=table.routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers=exception_handlers(),
    )
    # The same routes and lifespan, with exact paths looked up in a dict (api/paths.py); set
    # before the first request builds the middleware stack around it.
    app.router = ExactPathRouter(table.routes, lifespan=lifespan)
    app.state.gateway = gateway
    app.state.routes = table
    return app
