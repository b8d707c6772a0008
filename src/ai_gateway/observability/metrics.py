"""Prometheus metrics, on a registry owned by the app (no global state).

With several worker processes (`ai-gateway serve --workers N`) the CLI points
PROMETHEUS_MULTIPROC_DIR at a fresh directory before the workers start; prometheus_client then
keeps every value in a per-process file there, and `/metrics` (served by any worker) adds up
all of them. With one worker the values live in memory and nothing of this applies.
"""

from __future__ import annotations

import os
import re
from decimal import Decimal
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as prom_multiprocess

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
)


MAX_DIRECT_MODEL_LABELS = 200
# Longest label value kept as it is (the longest valid model name); a longer one is "other".
# With the count bounds this bounds the size of /metrics, which anyone may scrape.
MAX_LABEL_CHARS = 256
MAX_ERROR_LABELS = 200  # distinct (route, type, code) error series before "other"
_ERROR_LABEL = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class InFlight(Protocol):
    def inc(self) -> None: ...
    def dec(self) -> None: ...


class _Count:
    """A number only the event loop's thread changes."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self) -> None:
        self.value += 1

    def dec(self) -> None:
        self.value -= 1


def _bounded(labels: tuple[str, ...]) -> tuple[str, ...]:
    """`labels` with every value longer than MAX_LABEL_CHARS replaced by "other" (checked only
    when a new series would be made, never on the hot path of an existing one)."""
    if all(len(value) <= MAX_LABEL_CHARS for value in labels):
        return labels
    return tuple(value if len(value) <= MAX_LABEL_CHARS else "other" for value in labels)


class Metrics:
    """All of the gateway's metrics. Labelled children are memoised to keep the hot path cheap."""

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        """`multiprocess_dir`: where the workers' values are, when prometheus_client runs in
        multiprocess mode. By default it is PROMETHEUS_MULTIPROC_DIR, the variable that
        prometheus_client itself obeys (it decides when it is imported)."""
        self.multiprocess_dir = multiprocess_dir or os.environ.get(MULTIPROC_ENV) or None
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "ai_gateway_requests_total",
            "Requests by route, public model, provider and HTTP status.",
            ("route", "model", "provider", "status"),
            registry=r,
        )
        self.latency = Histogram(
            "ai_gateway_request_duration_seconds",
            "Time from request start to the last byte of the response.",
            ("route", "model", "provider"),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_latency = Histogram(
            "ai_gateway_upstream_duration_seconds",
            "Time an upstream provider took: the whole response, or the whole stream.",
            ("provider", "model"),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "ai_gateway_time_to_first_token_seconds",
            "Time from request start to the first content chunk sent to the client (streams).",
            ("provider", "model"),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "ai_gateway_tokens_total",
            "Tokens by public model, provider and direction (input/output), as providers report.",
            ("model", "provider", "direction"),
            registry=r,
        )
        self.cost = Counter(
            "ai_gateway_cost_usd_total",
            "What requests cost at the registry's prices, in US dollars, by public model and "
            "provider (models without a price add nothing).",
            ("model", "provider"),
            registry=r,
        )
        self.errors = Counter(
            "ai_gateway_errors_total",
            "Errors clients received, by route and the error's type and code (HTTP errors and "
            "errors sent inside a stream).",
            ("route", "type", "code"),
            registry=r,
        )
        self.in_flight = Gauge(
            "ai_gateway_in_flight_requests",
            "Requests being served now.",
            registry=r,
            multiprocess_mode="livesum",
        )
        # What the request middleware counts with (inc/dec). One process: a plain counter that
        # the gauge reads when scraped (no lock taken twice per request). Several workers: the
        # gauge itself, whose values live in the shared directory.
        self.requests_in_flight: InFlight = self.in_flight
        if self.multiprocess_dir is None:
            count = _Count()
            self.in_flight.set_function(lambda: count.value)
            self.requests_in_flight = count
        self.upstream_errors = Counter(
            "ai_gateway_upstream_errors_total",
            "Failed upstream calls by provider and error code.",
            ("provider", "code"),
            registry=r,
        )
        self.retries = Counter(
            "ai_gateway_retries_total",
            "Attempts that failed and were retried, by public model, provider and error code.",
            ("model", "provider", "code"),
            registry=r,
        )
        self.fallbacks = Counter(
            "ai_gateway_fallbacks_total",
            "Requests moved from one model name to another, by reason.",
            ("from_model", "to_model", "reason"),
            registry=r,
        )
        self.hedges = Counter(
            "ai_gateway_hedged_requests_total",
            "Second requests sent because the first deployment was slow.",
            ("model",),
            registry=r,
        )
        self.breaker_state = Gauge(
            "ai_gateway_breaker_state",
            "Circuit state per configured deployment: 0 closed, 1 half-open, 2 open.",
            ("deployment",),
            registry=r,
            # Each worker has its own breakers (unless they share Redis): show the worst.
            multiprocess_mode="livemax",
        )
        self.deployment_latency = Histogram(
            "ai_gateway_deployment_duration_seconds",
            "Attempt latency per configured deployment (streams: to the first token).",
            ("deployment", "outcome"),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.auth_failures = Counter(
            "ai_gateway_auth_failures_total",
            "Refused credentials by reason (missing, unknown_key, revoked_key, expired_key, "
            "invalid_jwt, malformed_header).",
            ("reason",),
            registry=r,
        )
        self.rate_limited = Counter(
            "ai_gateway_rate_limit_decisions_total",
            "The gateway's own limits: requests refused by limit kind (rps, tpm, concurrency) and "
            "scope (user, key, team, model), and budget refusals (kind budget).",
            ("kind", "scope", "outcome"),
            registry=r,
        )
        self.guardrail_findings = Counter(
            "ai_gateway_guardrail_findings_total",
            "Content rule matches by rule, direction (input/output) and action.",
            ("rule", "direction", "action"),
            registry=r,
        )
        self.cache_lookups = Counter(
            "ai_gateway_cache_requests_total",
            "Response cache outcomes by status (hit, semantic-hit, miss, refresh, bypass).",
            ("status",),
            registry=r,
        )
        self.cache_bytes = Counter(
            "ai_gateway_cache_bytes_total",
            "Bytes of cache entries stored and served.",
            ("direction",),
            registry=r,
        )
        self.cache_errors = Counter(
            "ai_gateway_cache_errors_total",
            "Cache failures by kind: a backend or index that did not answer (the request "
            "bypassed the cache), an entry that could not be decoded (dropped).",
            ("kind",),
            registry=r,
        )
        self.context_sources = Counter(
            "ai_gateway_context_sources_total",
            "What became of each context source a request asked (Memory, Project, Learning): "
            "ok, or why it was left out (timeout, unavailable, bad_response, circuit_open, ...).",
            ("source", "reason"),
            registry=r,
        )
        self._direct_models: set[str] = set()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._request_children: dict[tuple[str, ...], Counter] = {}
        self._latency_children: dict[tuple[str, ...], Histogram] = {}
        self._error_labels: set[tuple[str, str, str]] = set()

    def model_label(self, model: str, *, configured: bool) -> str:
        """The `model` label for a request: configured names as they are; `provider/<id>` names
        chosen by clients only up to MAX_DIRECT_MODEL_LABELS distinct ones, then "other"; a
        name longer than MAX_LABEL_CHARS is "other" too."""
        if len(model) > MAX_LABEL_CHARS:
            return "other"
        if configured or model in self._direct_models:
            return model
        if len(self._direct_models) < MAX_DIRECT_MODEL_LABELS:
            self._direct_models.add(model)
            return model
        return "other"

    def observe_request(
        self, route: str, model: str, provider: str, status: int, seconds: float
    ) -> None:
        key: tuple[str, ...] = (route, model, provider, str(status))
        counter = self._request_children.get(key)
        if counter is None:
            key = _bounded(key)
            counter = self._request_children[key] = self.requests.labels(*key)
        counter.inc()
        lkey = key[:3]
        hist = self._latency_children.get(lkey)
        if hist is None:
            hist = self._latency_children[lkey] = self.latency.labels(*lkey)
        hist.observe(seconds)

    def observe_usage(self, model: str, provider: str, usage: object) -> None:
        if not isinstance(usage, dict):
            return
        prompt = usage.get("prompt_tokens")
        completion = usage.get("completion_tokens")
        if isinstance(prompt, int) and prompt > 0:
            self._child(self.tokens, (model, provider, "input")).inc(prompt)
        if isinstance(completion, int) and completion > 0:
            self._child(self.tokens, (model, provider, "output")).inc(completion)

    def observe_cost(self, model: str, provider: str, cost: Decimal | None) -> None:
        """Add a request's cost (None: the model has no price; nothing is added)."""
        if cost is None or cost <= 0:
            return
        self._child(self.cost, (model, provider)).inc(float(cost))

    def observe_error(self, route: str, type_: str, code: str | None) -> None:
        """Count an error a client received. `type`/`code` are the OpenAI-style error's fields;
        values that are not short identifiers, and series past MAX_ERROR_LABELS, become
        "other", so an upstream's vocabulary cannot explode the label set."""
        labels = (route, type_, code or "")
        if labels not in self._error_labels:
            if (
                len(self._error_labels) >= MAX_ERROR_LABELS
                or not _ERROR_LABEL.fullmatch(type_)
                or (code and not _ERROR_LABEL.fullmatch(code))
            ):
                labels = (route, "other", "other")
            else:
                self._error_labels.add(labels)
        self._child(self.errors, labels).inc()

    def upstream_seconds(self, provider: str, model: str, seconds: float) -> None:
        self._child(self.upstream_latency, (provider, model)).observe(seconds)

    def first_token_seconds(self, provider: str, model: str, seconds: float) -> None:
        self._child(self.ttft, (provider, model)).observe(seconds)

    def _child(self, metric: Any, labels: tuple[str, ...]) -> Any:
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            key = (id(metric), _bounded(labels))
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = metric.labels(*key[1])
        return child

    def retry(self, model: str, provider: str, code: str) -> None:
        self._child(self.retries, (model, provider, code)).inc()

    def fallback(self, from_model: str, to_model: str, reason: str) -> None:
        self._child(self.fallbacks, (from_model, to_model, reason)).inc()

    def hedge(self, model: str) -> None:
        self._child(self.hedges, (model,)).inc()

    def breaker_changed(self, deployment: str, state: str) -> None:
        value = {"closed": 0, "half_open": 1, "open": 2}.get(state, 0)
        self._child(self.breaker_state, (deployment,)).set(value)

    def deployment_seconds(self, deployment: Any, seconds: float, ok: bool) -> None:
        # Configured deployments are a fixed set; client-chosen `provider/<id>` ones are not.
        label = deployment.id if deployment.from_config else "direct"
        self._child(self.deployment_latency, (label, "ok" if ok else "error")).observe(seconds)

    def render(self) -> bytes:
        """The exposition text: this process's values, or every worker's added up."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        collector: Any = prom_multiprocess.MultiProcessCollector  # untyped in prometheus_client
        collector(registry, path=self.multiprocess_dir)
        return generate_latest(registry)

    def close(self) -> None:
        """At a worker's shutdown: drop its live gauges (in-flight requests, breaker states) from
        the shared directory, so they stop counting in the other workers' `/metrics`."""
        if self.multiprocess_dir is not None:
            mark_dead: Any = prom_multiprocess.mark_process_dead  # untyped in prometheus_client
            mark_dead(os.getpid(), self.multiprocess_dir)
