"""The router: which deployment serves a request, and what happens when one fails.

For the public model name a client sends, the router
  1. resolves the group's deployments and keeps those whose circuit is not open;
  2. lets the group's strategy pick one (a group of one skips the strategy);
  3. checks the prompt against that model's context window (error, truncate or fall back);
  4. makes the attempt, bounded by the request's overall deadline, optionally hedged;
  5. on a retryable failure records it (breaker, stats), and tries again, preferring another
     deployment (no wait) or, on the same one, after exponential backoff with full jitter that
     honours Retry-After; errors the client caused are raised at once;
  6. when the group is exhausted, moves on to its fallbacks (context-window and content-policy
     failures to their own fallback lists), skipping those the request may not reach
     (RouteRequest.reach: the caller's allowed models, the model's limits), and raises the last
     error when nothing is left.

It never returns an empty success: either a result from some deployment, or an error.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import TypeVar

from ai_gateway.errors import (
    ContentFilteredError,
    GatewayError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from ai_gateway.model_registry import ModelRegistry
from ai_gateway.observability.logging import get_logger
from ai_gateway.observability.metrics import Metrics
from ai_gateway.routing.breaker import BreakerState, CircuitBreaker
from ai_gateway.routing.config import ContextStrategy, HedgeConfig, RouterConfig
from ai_gateway.routing.context_window import (
    ContextWindowManager,
    TooLarge,
    Truncated,
    larger_windows,
)
from ai_gateway.routing.deployments import Deployment, DeploymentTable
from ai_gateway.routing.race import first_success
from ai_gateway.routing.request import JSONObject, RouteRequest, Trace
from ai_gateway.routing.retry import backoff_s, is_context_overflow, is_retryable, retry_after_of
from ai_gateway.routing.stats import DeploymentStats
from ai_gateway.routing.strategies import CapacityExceededError, ChoiceContext, build_strategy
from ai_gateway.routing.usage import UsageUnavailableError, UsageWindow, estimated_tokens

__all__ = ["RouteRequest", "Router", "Trace"]  # the request types live in routing/request.py

log = get_logger(__name__)

T = TypeVar("T")


class _Exhausted(Exception):
    """A group could not serve: where to go next, and the error to raise if nowhere."""

    def __init__(self, error: GatewayError, targets: Sequence[str], reason: str) -> None:
        super().__init__(error.message)
        self.error = error
        self.targets = targets
        self.reason = reason


class Router:
    def __init__(
        self,
        table: DeploymentTable,
        config: RouterConfig,
        *,
        stats: DeploymentStats,
        breaker: CircuitBreaker,
        windows: ContextWindowManager,
        registry: ModelRegistry,
        metrics: Metrics,
        usage: UsageWindow | None = None,
        rng: random.Random | None = None,
        attempt_timeout_s: float = float("inf"),
    ) -> None:
        """`attempt_timeout_s`: the HTTP client's limit on one non-streaming call (the gateway's
        `request_timeout_s`), so the router can skip a deadline timer that cannot fire first.
        Each attempt's instrumentation (metrics, span) wraps `RouteRequest.call`
        (pipeline/attempts.py)."""
        self._table = table
        self._config = config
        self._stats = stats
        self._breaker = breaker
        self._windows = windows
        self._registry = registry
        self._metrics = metrics
        self._usage = usage
        self._rng = rng or random.Random()
        self._attempt_timeout_s = attempt_timeout_s
        group_strategy = {g.name: g.strategy for g in table.group_configs if g.strategy}
        self._strategies = {
            name: build_strategy(group_strategy.get(name, config.strategy)) for name in table.groups
        }
        self._default_strategy = build_strategy(config.strategy)
        self._context = {g.name: g.context_strategy for g in table.group_configs}

    # -- the request ---------------------------------------------------------------------------

    async def run(self, request: RouteRequest[T], trace: Trace) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._config.timeout_s
        # (name, the name it falls back from, why); the requested name comes from nowhere.
        queue: list[tuple[str, str | None, str]] = [(request.model, None, "")]
        visited: set[str] = set()
        error: GatewayError | None = None
        while queue:
            group, source, reason = queue.pop(0)
            if group in visited:
                continue
            visited.add(group)
            if source is not None:
                if not await self._may_enter(request, source, group, reason):
                    continue
                self._metrics.fallback(source, group, reason)
                trace.fallbacks.append(group)
            try:
                return await self._run_group(group, request, trace, deadline, last=not queue)
            except _Exhausted as exhausted:
                error = exhausted.error
                targets = [(t, group, exhausted.reason) for t in exhausted.targets]
                queue = [entry for entry in targets if entry[0] not in visited] + queue
        assert error is not None
        raise error

    @staticmethod
    async def _may_enter(request: RouteRequest[T], source: str, target: str, reason: str) -> bool:
        """Whether the request may move to the fallback `target` (RouteRequest.reach). One it
        may not is skipped; when none is left the client gets the error of the last name tried,
        as if there were no fallbacks."""
        if request.reach is None or await request.reach(target):
            return True
        log.info("fallback_skipped", from_model=source, to_model=target, reason=reason)
        return False

    async def _run_group(
        self, group: str, request: RouteRequest[T], trace: Trace, deadline: float, *, last: bool
    ) -> T:
        loop = asyncio.get_running_loop()
        deployments = self._table.resolve(group)
        tried: set[str] = set()
        error: GatewayError | None = None
        ctx_strategy = (
            request.context_strategy or self._context.get(group) or self._config.context_strategy
        )
        hedge = self._config.hedge.get(group) if len(deployments) > 1 else None
        for attempt in range(self._config.retries + 1):
            if loop.time() >= deadline:
                break
            try:
                deployment = await self._pick(group, deployments, tried, request, last=last)
            except CapacityExceededError as exc:
                raise _Exhausted(exc, self._config.fallbacks.get(group, ()), "capacity") from None
            if deployment is None:
                break
            try:
                if hedge is not None:
                    return await self._hedged(
                        group,
                        deployment,
                        deployments,
                        request,
                        trace,
                        deadline,
                        hedge,
                        ctx_strategy,
                    )
                body = self._fit(group, deployment, request.body, ctx_strategy, trace)
                return await self._attempt(deployment, body, request, trace, deadline)
            except GatewayError as exc:
                error = exc
                self._classify(group, exc)  # raises for errors that end the group now
            tried.add(deployment.id)
            if attempt == self._config.retries:
                break
            self._metrics.retry(group, deployment.provider, error.code or error.type)
            if any(d.id not in tried for d in deployments):
                continue  # another deployment is available: switch at once
            delay = backoff_s(
                attempt,
                base_s=self._config.backoff_base_s,
                max_s=self._config.backoff_max_s,
                rng=self._rng,
                retry_after_s=retry_after_of(error),
            )
            if loop.time() + delay >= deadline:
                break
            await asyncio.sleep(delay)
        if error is None:
            error = UpstreamUnavailableError(
                f"No deployment of '{group}' is available: every circuit is open after recent "
                "failures. Retry shortly.",
                headers={"Retry-After": str(int(self._config.breaker.cooldown_s))},
            )
        elif loop.time() >= deadline and not isinstance(error, UpstreamTimeoutError):
            error = self._deadline_error()
        raise _Exhausted(error, self._config.fallbacks.get(group, ()), "exhausted")

    def _classify(self, group: str, exc: GatewayError) -> None:
        """Return if `exc` is worth another attempt; otherwise raise (a fallback or the error)."""
        if is_retryable(exc):
            return
        if isinstance(exc, ContentFilteredError):
            targets = self._config.content_policy_fallbacks.get(group)
            if targets:
                raise _Exhausted(exc, targets, "content_policy") from None
        if is_context_overflow(exc):
            targets = self._larger_groups(group)
            if targets:
                raise _Exhausted(exc, targets, "context_window") from None
        raise exc

    # -- one attempt ---------------------------------------------------------------------------

    async def _attempt(
        self,
        deployment: Deployment,
        body: JSONObject,
        request: RouteRequest[T],
        trace: Trace,
        deadline: float,
    ) -> T:
        loop = asyncio.get_running_loop()
        trace.attempts += 1
        trace.last_tried = deployment
        capped = self._usage is not None and (deployment.rpm or deployment.tpm)
        estimate = estimated_tokens(body) if capped else 0
        counted = capped and await self._count_usage(deployment, requests=1, tokens=estimate)
        self._stats.started(deployment.id)
        started = loop.time()
        ok = False
        try:
            # The deadline needs its own timer only when it comes clearly before the attempt's
            # own timeout, which the HTTP client enforces anyway (within a second of it).
            own = deployment.timeout_s or self._attempt_timeout_s
            if request.stream or deadline - started + 1.0 < own:
                async with asyncio.timeout_at(deadline):
                    result = await request.call(deployment, body)
            else:
                result = await request.call(deployment, body)
            ok = True
        except TimeoutError:
            error: GatewayError = self._deadline_error()
            await self._failed(deployment, error)
            raise error from None
        except GatewayError as exc:
            if is_retryable(exc):
                await self._failed(deployment, exc)
            else:  # the upstream answered (about the request): the deployment is healthy
                await self._breaker.record_success(deployment.id)
            raise
        except BaseException:
            self._breaker.release_probe(deployment.id)  # cancelled: the probe never reported
            raise
        finally:
            seconds = loop.time() - started
            # A stream's attempt ends at its first token: that is its time to first token.
            first_token = seconds if ok and request.stream else None
            self._stats.finished(deployment.id, seconds, ok=ok, first_token_s=first_token)
        trace.served_by = deployment
        await self._breaker.record_success(deployment.id)
        if counted and deployment.tpm and request.tokens_of is not None:
            actual = request.tokens_of(result)
            if actual is not None and actual != estimate:
                await self._count_usage(deployment, tokens=actual - estimate)
        return result

    async def _count_usage(self, deployment: Deployment, *, requests: int = 0, tokens: int) -> bool:
        """Count an attempt against its deployment's rpm/tpm window when it has a capacity.
        Counted when it starts, so requests in flight count too. A window that is down loses
        the count rather than failing the request."""
        if self._usage is None or not (deployment.rpm or deployment.tpm):
            return False
        try:
            await self._usage.add(deployment.id, requests=requests, tokens=tokens)
        except UsageUnavailableError:
            log.warning("usage_window_unavailable", deployment=deployment.id)
            return False
        return True

    async def stream_failed(self, deployment: Deployment, exc: GatewayError) -> None:
        """A stream the router handed over at its first token failed after it (the upstream cut
        it, sent an error event, stalled): call once per stream. The attempt counted as a
        success when it opened; this failure counts against the deployment's circuit like one
        before the first token, so a deployment that cuts every stream is taken out of rotation.
        Failures that are not the deployment's (the gateway's content rules, the client's
        request) do not count."""
        if is_retryable(exc):
            await self._failed(deployment, exc)

    async def _failed(self, deployment: Deployment, exc: GatewayError) -> None:
        await self._breaker.record_failure(deployment.id, retry_after_s=retry_after_of(exc))

    def _deadline_error(self) -> UpstreamTimeoutError:
        return UpstreamTimeoutError(
            f"The request did not complete within the gateway's deadline of "
            f"{self._config.timeout_s:g}s (router.timeout_s), retries included."
        )

    async def _hedged(
        self,
        group: str,
        first: Deployment,
        deployments: Sequence[Deployment],
        request: RouteRequest[T],
        trace: Trace,
        deadline: float,
        hedge: HedgeConfig,
        ctx_strategy: ContextStrategy,
    ) -> T:
        """Start on `first`; if it has not answered in time, also start another deployment and
        take whichever answers first, cancelling the other (upstream included)."""
        body = self._fit(group, first, request.body, ctx_strategy, trace)
        primary = asyncio.create_task(self._attempt(first, body, request, trace, deadline))
        delay = hedge.after_s
        if hedge.after == "p95":
            delay = self._stats.p95(first.id) or hedge.after_s
        tasks = [primary]
        try:
            done, _ = await asyncio.wait(tasks, timeout=delay)
            if not done:
                second = await self._pick(group, deployments, {first.id}, request, last=False)
                if second is not None and second.id != first.id:
                    trace.hedged = True
                    self._metrics.hedge(group)
                    hedge_body = self._fit(group, second, request.body, ctx_strategy, trace)
                    tasks.append(
                        asyncio.create_task(
                            self._attempt(second, hedge_body, request, trace, deadline)
                        )
                    )
        except BaseException:
            primary.cancel()
            await asyncio.gather(primary, return_exceptions=True)
            raise
        return (await first_success(tasks, request.discard))[1]

    # -- choosing ------------------------------------------------------------------------------

    async def _pick(
        self,
        group: str,
        deployments: Sequence[Deployment],
        tried: set[str],
        request: RouteRequest[T],
        *,
        last: bool,
    ) -> Deployment | None:
        candidates = [d for d in deployments if d.id not in tried] or list(deployments)
        healthy = [d for d in candidates if self._breaker.state(d.id) is not BreakerState.OPEN]
        if not healthy:
            # Every circuit is open. With somewhere else to go, go there; as the last resort,
            # let the upstream answer rather than failing a request that might succeed.
            return candidates[0] if last and candidates else None
        strategy = self._strategies.get(group, self._default_strategy)
        while healthy:
            if len(healthy) == 1 and not strategy.enforces_capacity:
                choice = healthy[0]
            else:
                choice = await strategy.choose(
                    healthy,
                    ChoiceContext(
                        stats=self._stats,
                        registry=self._registry,
                        usage=self._usage,
                        rng=self._rng,
                        stream=request.stream,
                        estimated_tokens=estimated_tokens(request.body),
                    ),
                )
            if self._breaker.allows(choice.id):
                return choice
            healthy = [d for d in healthy if d.id != choice.id]
        return candidates[0] if last else None

    def _fit(
        self,
        group: str,
        deployment: Deployment,
        body: JSONObject,
        strategy: ContextStrategy | None,
        trace: Trace,
    ) -> JSONObject:
        """The body to send to `deployment`: as is, truncated, or a context-window fallback."""
        if not request_checks_context(body):
            return body
        decision = self._windows.check(deployment, body, strategy or "error")
        if isinstance(decision, Truncated):
            trace.truncated_messages = decision.dropped
            return {**body, "messages": decision.messages}
        if isinstance(decision, TooLarge):
            error = self._windows.too_large_error(deployment, decision)
            targets = self._larger_groups(group)
            if targets and (
                strategy == "fallback" or group in self._config.context_window_fallbacks
            ):
                raise _Exhausted(error, targets, "context_window")
            raise error
        return body

    def _larger_groups(self, group: str) -> list[str]:
        """Configured context-window fallbacks, else configured names with a larger window."""
        configured = self._config.context_window_fallbacks.get(group)
        if configured:
            return list(configured)
        return larger_windows(self._table.groups, self._registry, group)


def request_checks_context(body: JSONObject) -> bool:
    """Chat prompts are checked against the context window; embeddings inputs are not."""
    return isinstance(body.get("messages"), list)
