"""Turning a finished request into a usage record: tokens, exact cost, latency, outcome.

Called once per request by the pipeline, when the answer is complete (a stream: when it ends).
Its work is a price lookup, a little arithmetic and a non-blocking hand-off to the background
writer; nothing here waits for the analytics store.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from time import perf_counter, time
from typing import Protocol

from ai_gateway.errors import GatewayError
from ai_gateway.model_registry import ModelRegistry
from ai_gateway.observability.metrics import Metrics
from ai_gateway.pipeline.context import RequestInfo
from ai_gateway.usage.pricing import cost_of, token_counts
from ai_gateway.usage.records import Route, UsageRecord


class UsageSink(Protocol):
    def submit_usage(self, record: UsageRecord) -> None: ...


class UsageRecorder:
    def __init__(self, registry: ModelRegistry, metrics: Metrics, sink: UsageSink | None) -> None:
        self._registry = registry
        self._metrics = metrics
        self._sink = sink

    def record(
        self,
        info: RequestInfo,
        route: Route,
        *,
        stream: bool,
        usage: object = None,
        error: GatewayError | None = None,
        status: int | None = None,
        error_type: str | None = None,
        ttft_s: float | None = None,
    ) -> Decimal | None:
        """Record the request; returns its cost in USD (None when the model has no price)."""
        trace = info.trace
        # A failed request is attributed to the deployment of its last attempt (error rates
        # per deployment), and has no cost.
        served = trace.served_by if trace is not None else None
        reached = served or (trace.last_tried if trace is not None else None)
        provider = reached.provider if reached is not None else info.provider
        upstream = reached.model if reached is not None else ""
        counts = token_counts(usage)
        cost = None
        if usage is not None and served is not None:
            cost = cost_of(self._registry.get(served.provider, served.model), counts)
            self._metrics.observe_cost(info.model, provider, cost)
        prompt, completion, cached, cache_write, reasoning = counts
        # What the request used, for the limits and budgets settled when it ends.
        info.cost_usd = cost
        info.total_tokens = prompt + completion
        if self._sink is None:
            return cost
        principal = info.principal
        seconds = perf_counter() - info.started
        self._sink.submit_usage(
            UsageRecord(
                request_id=info.request_id,
                created_at=datetime.fromtimestamp(time() - seconds, UTC),
                route=route,
                model=trace.requested if trace is not None else info.model,
                served_model=reached.group if reached is not None else "",
                provider=provider,
                deployment=reached.id if reached is not None else "",
                upstream_model=upstream,
                stream=stream,
                status=status if status is not None else (error.status if error else 200),
                error_type=error.type if error is not None else error_type,
                error_code=error.code if error is not None else None,
                prompt_tokens=prompt,
                completion_tokens=completion,
                cached_tokens=cached,
                cache_write_tokens=cache_write,
                reasoning_tokens=reasoning,
                cost_usd=cost,
                latency_ms=seconds * 1000,
                ttft_ms=ttft_s * 1000 if ttft_s is not None else None,
                attempts=trace.attempts if trace is not None else 0,
                fallbacks=len(trace.fallbacks) if trace is not None else 0,
                user=principal.user if principal is not None else None,
                key_id=principal.key_id if principal is not None else None,
                team=principal.team if principal is not None else None,
            )
        )
        return cost
