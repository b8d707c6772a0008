"""The usage record the recorder builds for each request: every field, from a success with a
virtual key, a stream, a failure after a fallback, and a request that never reached a
deployment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from time import perf_counter

from ai_gateway.errors import UpstreamRateLimitError
from ai_gateway.model_registry import ModelInfo, ModelRegistry
from ai_gateway.observability.metrics import Metrics
from ai_gateway.request_info import RequestInfo
from ai_gateway.routing.deployments import Deployment
from ai_gateway.routing.router import Trace
from ai_gateway.security.keys import ApiKey
from ai_gateway.security.principal import Principal
from ai_gateway.usage.recorder import UsageRecorder
from ai_gateway.usage.records import UsageRecord

PRICED = ModelInfo(
    id="up-model",
    provider="openai",
    mode="chat",
    context_window=1000,
    input_price=Decimal("2"),
    output_price=Decimal("8"),
)
PRIMARY = Deployment(id="grp/0", group="grp", provider="openai", model="up-model", api_base="x")
BACKUP = Deployment(id="alt/1", group="alt", provider="anthropic", model="claude-x", api_base="y")


class Sink:
    def __init__(self) -> None:
        self.records: list[UsageRecord] = []

    def submit_usage(self, record: UsageRecord) -> None:
        self.records.append(record)


def recorder() -> tuple[UsageRecorder, Sink]:
    sink = Sink()
    return UsageRecorder(ModelRegistry([PRICED]), Metrics(), sink), sink


def key(**fields: object) -> ApiKey:
    values: dict[str, object] = {"id": "0a1b2c3d4e5f", "user": "ulla", "salt": b"s" * 16}
    values |= {"secret_hash": b"h" * 32, "created_at": datetime.now(UTC), "team": "blue"}
    return ApiKey(**values | fields)  # type: ignore[arg-type]


def test_a_success_with_a_virtual_key() -> None:
    rec, sink = recorder()
    info = RequestInfo(request_id="req-1", model="public", provider="openai")
    info.started = perf_counter() - 0.25
    info.trace = Trace(requested="public", served_by=PRIMARY, last_tried=PRIMARY, attempts=2)
    info.trace.fallbacks.append("other")
    k = key()
    info.principal = Principal(kind="key", user="ulla", team="blue", key=k)
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 50,
        "prompt_tokens_details": {"cached_tokens": 10},
        "completion_tokens_details": {"reasoning_tokens": 20},
        "cache_creation_input_tokens": 5,
    }
    before = datetime.now(UTC)
    rec.measure(info, usage)
    cost = info.cost_usd
    rec.record(info, "chat", "public", stream=False, usage=usage)
    [r] = sink.records
    assert cost == Decimal("0.0006")  # (100 x 2 + 50 x 8) / 1M
    assert (r.request_id, r.route, r.model, r.served_model) == ("req-1", "chat", "public", "grp")
    assert (r.provider, r.deployment, r.upstream_model) == ("openai", "grp/0", "up-model")
    assert (r.stream, r.status, r.error_type, r.error_code) == (False, 200, None, None)
    assert (r.prompt_tokens, r.completion_tokens, r.cached_tokens) == (100, 50, 10)
    assert (r.cache_write_tokens, r.reasoning_tokens, r.cost_usd) == (5, 20, cost)
    assert 250 <= r.latency_ms < 1250
    assert r.ttft_ms is None
    assert (r.attempts, r.fallbacks, r.cache_status) == (2, 1, "off")
    assert (r.user, r.key_id, r.team, r.template) == ("ulla", k.id, "blue", None)
    # created_at is when the request started: its latency before it was recorded
    started = before - timedelta(milliseconds=r.latency_ms)
    assert abs((r.created_at - started).total_seconds()) < 0.05
    assert r.created_at.tzinfo is UTC
    assert (info.cost_usd, info.total_tokens) == (cost, 150)


def test_a_stream_records_its_time_to_first_token() -> None:
    rec, sink = recorder()
    info = RequestInfo(request_id="req-2", model="public", provider="openai")
    info.trace = Trace(requested="public", served_by=PRIMARY, last_tried=PRIMARY, attempts=1)
    rec.record(info, "chat", "public", stream=True, usage={"prompt_tokens": 1}, ttft_s=0.125)
    [r] = sink.records
    assert (r.stream, r.ttft_ms, r.user, r.key_id, r.team) == (True, 125.0, None, None, None)


def test_a_failure_is_attributed_to_its_last_deployment_and_costs_nothing() -> None:
    rec, sink = recorder()
    info = RequestInfo(request_id="req-3", model="public", provider="openai")
    info.trace = Trace(requested="public", last_tried=BACKUP, attempts=3)
    error = UpstreamRateLimitError("slow down", code="upstream_rate_limited")
    rec.measure(info, None)
    rec.record(info, "chat", "public", stream=False, error=error)
    [r] = sink.records
    assert (r.served_model, r.provider, r.deployment) == ("alt", "anthropic", "alt/1")
    assert (r.upstream_model, r.status) == ("claude-x", 429)
    assert (r.error_type, r.error_code) == ("rate_limit_error", "upstream_rate_limited")
    assert (r.cost_usd, r.prompt_tokens, r.attempts) == (None, 0, 3)


def test_a_request_that_reached_no_deployment() -> None:
    rec, sink = recorder()
    info = RequestInfo(request_id="req-4", model="nope")
    rec.record(
        info, "embeddings", "nope", stream=False, status=499, error_type="client_disconnected"
    )
    [r] = sink.records
    assert (r.route, r.model, r.served_model, r.provider, r.deployment) == (
        "embeddings",
        "nope",
        "",
        "",
        "",
    )
    assert (r.status, r.error_type, r.error_code, r.attempts, r.fallbacks) == (
        499,
        "client_disconnected",
        None,
        0,
        0,
    )
