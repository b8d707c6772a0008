"""Turning a finished request into a usage record: tokens, exact cost, latency, outcome.

Called once per request by the pipeline, when the answer is complete (a stream: when it ends).
Its work is a price lookup, a little arithmetic and a non-blocking hand-off to the background
writer; nothing here waits for the analytics store.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from time import perf_counter, time
from typing import Any, Protocol, cast

from ai_gateway.errors import GatewayError, PermissionDeniedError
from ai_gateway.model_registry import ModelRegistry
from ai_gateway.observability.metrics import Metrics
from ai_gateway.request_info import RequestInfo
from ai_gateway.usage.estimate import max_cost
from ai_gateway.usage.pricing import cost_of, token_counts
from ai_gateway.usage.pricing import priced as has_prices
from ai_gateway.usage.records import CacheStatus, Route, UsageRecord
from ai_gateway.usage.streamed import StreamTally
from ai_gateway.usage.tokens import TokenCounter


class UsageSink(Protocol):
    def submit_usage(self, record: UsageRecord) -> None: ...


class UsageRecorder:
    def __init__(
        self,
        registry: ModelRegistry,
        metrics: Metrics,
        sink: UsageSink | None,
        counter: TokenCounter | None = None,
    ) -> None:
        """`counter`: counts the tokens of a stream that ends without the provider's usage
        (None: such a stream is recorded with no tokens)."""
        self._registry = registry
        self._metrics = metrics
        self._sink = sink
        self._counter = counter

    def priced(self, provider: str, model: str) -> bool:
        """Whether the registry can price `model` (a cost can be charged for it)."""
        return has_prices(self._registry.get(provider, model))

    def require_price(self, provider: str, model: str, name: str) -> None:
        """403 model_not_priced when the registry has no price for `model` (served as the
        public name `name`): a caller under a budget could otherwise use it for free."""
        if self.priced(provider, model):
            return
        raise PermissionDeniedError(
            f"The model {name!r} ({provider}/{model}) has no price in this gateway's model "
            "registry, and this request is under a budget, so its cost could not be charged. "
            f"An operator can price it in the config: registry: [{{provider: {provider}, id: "
            f"{model}, input_price: '<USD per 1M tokens>', output_price: '<USD per 1M "
            "tokens>'}] (a model the registry does not list also needs mode and "
            "context_window). Until then use a priced model.",
            param="model",
            code="model_not_priced",
        )

    def max_cost(self, provider: str, model: str, body: Mapping[str, Any]) -> Decimal | None:
        """The most `body` can cost on this model (usage/estimate.py); None without a price
        or a token counter."""
        if self._counter is None:
            return None
        info = self._registry.get(provider, model)
        return max_cost(self._counter, info, provider, model, body)

    def tally(
        self, info: RequestInfo, provider: str, model: str, body: Mapping[str, Any]
    ) -> StreamTally | None:
        """A counter of what a stream sends, for when no usage arrives; None when nothing
        would use the count (no analytics, no budget or token limit for the caller)."""
        if self._counter is None or (self._sink is None and not info.metered):
            return None
        return StreamTally(self._counter, provider, model, body)

    def measure(self, info: RequestInfo, usage: object) -> None:
        """What the request used, from the usage of its answer: `info.total_tokens` and
        `info.cost_usd` (None when the model has no price), read by the limits and budgets it
        is settled against, and the cost metric."""
        counts = token_counts(usage)
        info.total_tokens = counts[0] + counts[1]
        trace = info.trace
        served = trace.served_by if trace is not None else None
        if usage is None or served is None:
            info.cost_usd = None
            return
        cost = cost_of(self._registry.get(served.provider, served.model), counts)
        self._metrics.observe_cost(info.model, served.provider, cost)
        info.cost_usd = cost

    def record(
        self,
        info: RequestInfo,
        route: Route,
        model: str,
        *,
        stream: bool,
        usage: object = None,
        error: GatewayError | None = None,
        status: int | None = None,
        error_type: str | None = None,
        ttft_s: float | None = None,
        estimated: bool = False,
        cache_status: str = "off",
        saved_tokens: int = 0,
        saved_cost_usd: Decimal | None = None,
    ) -> None:
        """Write the request's usage record: `model` as requested, `usage` as measured (its
        cost is `info.cost_usd`, from `measure`). `estimated`: `usage` is the gateway's count
        (a stream that ended without usage). `cache_status`: what the response cache did;
        `saved_*`: what a hit's answer cost when it was generated."""
        if self._sink is None:
            return
        trace = info.trace
        # A failed request is attributed to the deployment of its last attempt (error rates
        # per deployment).
        served = trace.served_by if trace is not None else None
        reached = served or (trace.last_tried if trace is not None else None)
        provider = reached.provider if reached is not None else info.provider
        prompt, completion, cached, cache_write, reasoning = token_counts(usage)
        principal = info.principal
        seconds = perf_counter() - info.started
        self._sink.submit_usage(
            UsageRecord(
                request_id=info.request_id,
                created_at=datetime.fromtimestamp(time() - seconds, UTC),  # when it started
                route=route,
                model=model,
                served_model=reached.group if reached is not None else "",
                provider=provider,
                deployment=reached.id if reached is not None else "",
                upstream_model=reached.model if reached is not None else "",
                stream=stream,
                status=status if status is not None else (error.status if error else 200),
                error_type=error.type if error is not None else error_type,
                error_code=error.code if error is not None else None,
                prompt_tokens=prompt,
                completion_tokens=completion,
                cached_tokens=cached,
                cache_write_tokens=cache_write,
                reasoning_tokens=reasoning,
                cost_usd=info.cost_usd,
                latency_ms=seconds * 1000,
                ttft_ms=ttft_s * 1000 if ttft_s is not None else None,
                attempts=trace.attempts if trace is not None else 0,
                fallbacks=len(trace.fallbacks) if trace is not None else 0,
                user=principal.user if principal is not None else None,
                key_id=principal.key_id if principal is not None else None,
                team=principal.team if principal is not None else None,
                client_request_id=info.client_request_id,
                usage_estimated=estimated,
                cache_status=cast(CacheStatus, cache_status),
                saved_tokens=saved_tokens,
                saved_cost_usd=saved_cost_usd,
                prompt_id=info.prompt_id,
                prompt_version=info.prompt_version,
            )
        )
