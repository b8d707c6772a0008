"""Tracing: when it is on, the attempt span's GenAI attributes, and trace context propagation."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from ai_gateway.errors import UpstreamBadRequestError
from ai_gateway.observability.tracing import Tracing, exporters_from_env, tracing_from_env
from ai_gateway.routing.deployments import Deployment
from ai_gateway.settings import ConfigError, GatewaySettings

KEY = "key-that-must-never-be-traced-0001"
DEP = Deployment(
    id="fast/0",
    group="fast",
    provider="anthropic",
    model="claude-x",
    api_base="https://api.example.test:8443/v1",
    api_key=KEY,
)
CHAT = {
    "model": "fast",
    "messages": [{"role": "user", "content": "the secret plan"}],
    "max_tokens": 64,
    "temperature": 0.5,
    "top_p": 1,
}


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


def only(exporter: InMemorySpanExporter) -> ReadableSpan:
    spans = exporter.get_finished_spans()
    assert len(spans) == 1, spans
    return spans[0]


def all_text(span: ReadableSpan) -> str:
    parts = [span.name, str(dict(span.attributes or {})), str(span.status.description)]
    parts += [f"{e.name} {dict(e.attributes or {})}" for e in span.events]
    return " ".join(parts)


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, ()),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ("otlp",)),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, ("otlp",)),
        ({"OTEL_TRACES_EXPORTER": "console"}, ("console",)),
        ({"OTEL_TRACES_EXPORTER": "otlp,console"}, ("otlp", "console")),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, ()),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, ()),
        ({"OTEL_SDK_DISABLED": "TRUE", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, ()),
        ({"OTEL_SDK_DISABLED": "false", "OTEL_TRACES_EXPORTER": "console"}, ("console",)),
    ],
)
def test_the_standard_variables_switch_tracing(env: dict[str, str], expected: tuple[str]) -> None:
    assert exporters_from_env(env) == expected


def test_an_unsupported_exporter_or_protocol_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="OTEL_TRACES_EXPORTER: jaeger"):
        exporters_from_env({"OTEL_TRACES_EXPORTER": "jaeger"})
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    with pytest.raises(ConfigError, match="http/protobuf"):
        tracing_from_env(GatewaySettings(), env)


def test_off_imports_nothing_of_opentelemetry() -> None:
    code = (
        "import sys\n"
        "from ai_gateway.observability.tracing import tracing_from_env\n"
        "from ai_gateway.settings import GatewaySettings\n"
        "assert tracing_from_env(GatewaySettings(), {}) is None\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_on_builds_a_provider_named_ai_gateway_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    tracing = tracing_from_env(GatewaySettings(), {"OTEL_TRACES_EXPORTER": "console"})
    assert tracing is not None
    try:
        resource = tracing._provider.resource  # type: ignore[attr-defined]
        assert resource.attributes["service.name"] == "ai-gateway"
    finally:
        tracing.shutdown()
    monkeypatch.setenv("OTEL_SERVICE_NAME", "edge-gateway")
    named = tracing_from_env(GatewaySettings(), {"OTEL_TRACES_EXPORTER": "console"})
    assert named is not None
    try:
        assert named._provider.resource.attributes["service.name"] == "edge-gateway"  # type: ignore[attr-defined]
    finally:
        named.shutdown()


# -- the attempt span ----------------------------------------------------------------------------


def test_an_attempt_is_a_client_span_with_genai_attributes(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracing = Tracing(provider)
    with tracing.attempt(DEP, CHAT, 1):
        tracing.record_response(
            {
                "id": "chatcmpl-1",
                "model": "claude-x-20250101",
                "choices": [{"index": 0, "message": {"content": "ok"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 3},
            }
        )
    span = only(exporter)
    assert span.name == "chat claude-x"
    assert span.kind is SpanKind.CLIENT
    assert dict(span.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "anthropic",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-x",
        "gen_ai.request.max_tokens": 64,
        "gen_ai.request.temperature": 0.5,
        "gen_ai.request.top_p": 1.0,
        "gen_ai.response.model": "claude-x-20250101",
        "gen_ai.response.id": "chatcmpl-1",
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 3,
        "gen_ai.response.finish_reasons": ("stop",),
        "server.address": "api.example.test",
        "server.port": 8443,
        "ai_gateway.deployment": "fast/0",
        "ai_gateway.model": "fast",
        "ai_gateway.attempt": 1,
    }
    assert span.status.status_code is StatusCode.UNSET
    assert not span.events  # no prompt or completion text by default
    assert "secret plan" not in all_text(span)


@pytest.mark.parametrize(
    ("provider_name", "system"), [("gemini", "gcp.gemini"), ("openai", "openai")]
)
def test_provider_names_follow_the_semantic_conventions(
    provider: TracerProvider, exporter: InMemorySpanExporter, provider_name: str, system: str
) -> None:
    deployment = Deployment(
        id="e/0",
        group="e",
        provider=provider_name,
        model="m",
        api_base="http://h/v1",  # type: ignore[arg-type]
    )
    with Tracing(provider).attempt(deployment, {"model": "e", "input": ["a"]}, 2):
        pass
    span = only(exporter)
    assert span.name == "embeddings m"
    assert span.attributes is not None
    assert span.attributes["gen_ai.operation.name"] == "embeddings"
    assert span.attributes["gen_ai.system"] == system
    assert span.attributes["ai_gateway.attempt"] == 2
    assert "server.port" not in span.attributes


def test_a_failed_attempt_has_error_status_and_no_secret(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracing = Tracing(provider)
    error = UpstreamBadRequestError(f"upstream said: bad key {KEY}", code="invalid_value")
    with pytest.raises(UpstreamBadRequestError), tracing.attempt(DEP, CHAT, 1):
        raise error
    span = only(exporter)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "invalid_value"
    assert span.attributes["ai_gateway.error.status"] == 400
    assert "upstream said" in str(span.status.description)
    assert KEY not in all_text(span)


async def test_a_cancelled_attempt_is_marked_not_failed(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracing = Tracing(provider)

    async def attempt() -> None:
        with tracing.attempt(DEP, CHAT, 1):
            await asyncio.sleep(10)

    task = asyncio.create_task(attempt())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    span = only(exporter)
    assert span.attributes is not None
    assert span.attributes["ai_gateway.cancelled"] is True
    assert span.status.status_code is StatusCode.UNSET


def test_a_held_stream_span_ends_when_the_pipeline_finishes_it(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracing = Tracing(provider)
    with tracing.attempt(DEP, CHAT, 1):
        held = tracing.hold_attempt()
    assert held is not None
    assert exporter.get_finished_spans() == ()  # still open after the router's attempt
    held.record_chunk({"id": "c1", "model": "claude-x", "choices": [{"delta": {"content": "hi"}}]})
    held.record_chunk({"choices": [{"delta": {}, "finish_reason": "length"}]})
    held.record_chunk({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 7}})
    held.finish()
    held.finish()  # once only
    span = only(exporter)
    assert span.attributes is not None
    assert span.attributes["gen_ai.response.finish_reasons"] == ("length",)
    assert span.attributes["gen_ai.usage.output_tokens"] == 7
    assert span.attributes["gen_ai.response.model"] == "claude-x"


def test_a_held_span_still_ends_when_the_attempt_fails_afterwards(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracing = Tracing(provider)

    def attempt_that_fails_after_the_hold() -> None:
        with tracing.attempt(DEP, CHAT, 1):
            tracing.hold_attempt()
            raise RuntimeError("lost before the pipeline got it")

    with pytest.raises(RuntimeError):
        attempt_that_fails_after_the_hold()
    assert only(exporter).status.status_code is StatusCode.ERROR


def test_content_is_recorded_only_when_asked_and_truncated(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracing = Tracing(provider, trace_content=True, content_limit=40)
    long_prompt = {"model": "fast", "messages": [{"role": "user", "content": "p" * 500}]}
    with tracing.attempt(DEP, long_prompt, 1):
        tracing.record_response({"choices": [{"message": {"content": "c" * 500}}]})
    events = {e.name: dict(e.attributes or {}) for e in only(exporter).events}
    prompt = str(events["gen_ai.content.prompt"]["gen_ai.prompt"])
    completion = str(events["gen_ai.content.completion"]["gen_ai.completion"])
    assert prompt.startswith('[{"role":"user"')
    assert len(prompt) == 40
    assert completion == "c" * 40


# -- propagation ---------------------------------------------------------------------------------


def test_inject_adds_the_current_attempt_as_traceparent(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracing = Tracing(provider)
    assert tracing.inject({"a": "b"}) == {"a": "b"}  # no span: nothing to propagate
    with tracing.attempt(DEP, CHAT, 1):
        headers = tracing.inject({"content-type": "application/json"})
    span = only(exporter)
    context = span.get_span_context()
    assert headers["content-type"] == "application/json"
    version, trace_id, parent_id, flags = headers["traceparent"].split("-")
    assert (version, trace_id, parent_id) == (
        "00",
        f"{context.trace_id:032x}",
        f"{context.span_id:016x}",
    )
    assert int(flags, 16) & 1  # sampled


def test_the_request_span_continues_an_incoming_trace(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    from ai_gateway.request_info import RequestInfo

    tracing = Tracing(provider)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "scheme": "http",
        "client": ("127.0.0.1", 5000),
        "headers": [
            (b"traceparent", f"00-{trace_id}-00f067aa0ba902b7-01".encode()),
            (b"tracestate", b"vendor=1"),
        ],
    }
    request = tracing.start_request(scope, "/v1/chat/completions", "rid-1")
    with tracing.attempt(DEP, CHAT, 1):
        pass
    request.end(502, RequestInfo(request_id="rid-1", model="fast"), ("upstream_error", "x"))
    attempt, server = exporter.get_finished_spans()
    assert server.name == "POST /v1/chat/completions"
    assert server.kind is SpanKind.SERVER
    assert f"{server.context.trace_id:032x}" == trace_id
    assert server.parent is not None
    assert f"{server.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert server.context.trace_state.get("vendor") == "1"
    assert attempt.parent is not None
    assert attempt.parent.span_id == server.context.span_id
    assert server.status.status_code is StatusCode.ERROR
    assert server.attributes is not None
    assert server.attributes["http.response.status_code"] == 502
    assert server.attributes["ai_gateway.error.type"] == "upstream_error"


# -- shutdown ------------------------------------------------------------------------------------


async def test_shutdown_flushes_the_batched_spans() -> None:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
    tracing = Tracing(provider, owns_provider=True)
    with tracing.attempt(DEP, CHAT, 1):
        pass
    assert exporter.get_finished_spans() == ()  # still in the batch
    await tracing.aclose()
    assert len(exporter.get_finished_spans()) == 1


async def test_shutdown_does_not_wait_for_an_unreachable_collector() -> None:
    release = threading.Event()

    class StuckProvider(TracerProvider):
        def shutdown(self) -> None:
            release.wait(10)  # an exporter retrying against a collector that is down
            super().shutdown()

    tracing = Tracing(StuckProvider(shutdown_on_exit=False), owns_provider=True)
    started = time.monotonic()
    try:
        await tracing.aclose(timeout_s=0.2)
        assert time.monotonic() - started < 2
    finally:
        release.set()
