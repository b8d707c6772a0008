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
        # Positional, in UsageRecord's field order: a third of the cost of keywords, once per
        # request (tests/unit/test_usage_recorder.py checks every field).
        self._sink.submit_usage(
            UsageRecord(
                info.request_id,
                datetime.fromtimestamp(time() - seconds, UTC),  # created_at
                route,
                trace.requested if trace is not None else info.model,  # model
                reached.group if reached is not None else "",  # served_model
                provider,
                reached.id if reached is not None else "",  # deployment
                upstream,  # upstream_model
                stream,
                status if status is not None else (error.status if error else 200),
                error.type if error is not None else error_type,
                error.code if error is not None else None,
                prompt,
                completion,
                cached,
                cache_write,
                reasoning,
                cost,
                seconds * 1000,  # latency_ms
                ttft_s * 1000 if ttft_s is not None else None,  # ttft_ms
                trace.attempts if trace is not None else 0,
                len(trace.fallbacks) if trace is not None else 0,
                "off",  # cache_status
                principal.user if principal is not None else None,
                principal.key_id if principal is not None else None,
                principal.team if principal is not None else None,
            )
        )
        return cost
