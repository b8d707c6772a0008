"""Traces, metrics and the access log of a real gateway on a real socket, against the emulator.

Spans are collected with the SDK's in-memory exporter through the app's `tracing` hook;
metrics are read back with prometheus_client's own parser."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client.parser import text_string_to_metric_families

from ai_gateway.observability.logging import configure_logging
from ai_gateway.observability.metrics import Metrics
from ai_gateway.observability.tracing import Tracing
from conftest import GatewayFactory, emulator_yaml
from harness import (
    EMULATOR_KEY,
    VENV_BIN,
    EmulatorServer,
    GatewayServer,
    config_from_yaml,
    dep,
    free_port,
    output,
    start_process,
    wait_http,
)

PROMPT = "a prompt that must not be traced"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


class Traced:
    """A gateway whose spans land in memory."""

    def __init__(self, server: GatewayServer, exporter: InMemorySpanExporter) -> None:
        self.server = server
        self.exporter = exporter
        self.url = server.url

    def spans(self, servers: int = 1, timeout: float = 5) -> list[ReadableSpan]:
        """The finished spans, once `servers` request spans have ended (they end just after
        the response has been sent)."""
        deadline = time.monotonic() + timeout
        while True:
            spans = list(self.exporter.get_finished_spans())
            if sum(s.kind is SpanKind.SERVER for s in spans) >= servers:
                return spans
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {servers} request spans, got {spans}")
            time.sleep(0.01)


@pytest.fixture
def start_traced(tmp_path: Path) -> Iterator[Callable[..., Traced]]:
    started: list[tuple[GatewayServer, TracerProvider]] = []

    def start(yaml_text: str, **overrides: Any) -> Traced:
        exporter = InMemorySpanExporter()
        provider = TracerProvider(shutdown_on_exit=False)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        config = config_from_yaml(tmp_path, yaml_text, overrides)
        server = GatewayServer(config, tracing=Tracing(provider))
        started.append((server, provider))
        return Traced(server, exporter)

    yield start
    for server, provider in started:
        server.stop()
        provider.shutdown()


def post_chat(url: str, model: str = "fast", **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], **extra}
    headers = extra.pop("headers", None) if "headers" in extra else None
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30)


def by_kind(spans: list[ReadableSpan]) -> tuple[ReadableSpan, list[ReadableSpan]]:
    (server,) = [s for s in spans if s.kind is SpanKind.SERVER]
    attempts = sorted(
        (s for s in spans if s.kind is SpanKind.CLIENT),
        key=lambda s: (s.attributes or {}).get("ai_gateway.attempt", 0),
    )
    return server, attempts


def span_text(spans: list[ReadableSpan]) -> str:
    return json.dumps([json.loads(s.to_json()) for s in spans])


# -- traces ------------------------------------------------------------------------------------


def test_a_request_and_its_attempt_are_spans_with_genai_attributes(
    start_traced: Callable[..., Traced], emu: EmulatorServer
) -> None:
    gw = start_traced(emulator_yaml(emu))
    resp = post_chat(gw.url, max_tokens=50, temperature=0.2)
    assert resp.status_code == 200, resp.text
    usage = resp.json()["usage"]
    server, (attempt,) = by_kind(gw.spans())

    assert server.name == "POST /v1/chat/completions"
    assert server.attributes is not None
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["http.route"] == "/v1/chat/completions"
    assert server.attributes["ai_gateway.request_id"] == resp.headers["x-request-id"]
    assert server.attributes["ai_gateway.attempts"] == 1

    assert attempt.name == "chat gpt-4o-mini"
    assert attempt.parent is not None
    assert attempt.parent.span_id == server.context.span_id
    assert attempt.context.trace_id == server.context.trace_id
    attrs = dict(attempt.attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.system"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.response.model"] == resp.json()["model"]
    assert attrs["gen_ai.request.max_tokens"] == 50
    assert attrs["gen_ai.request.temperature"] == 0.2
    assert attrs["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    assert attrs["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
    assert attrs["gen_ai.response.finish_reasons"] == (resp.json()["choices"][0]["finish_reason"],)
    assert attrs["server.address"] == "127.0.0.1"
    assert attrs["server.port"] == emu.port
    assert attrs["ai_gateway.deployment"] == "fast/0"
    assert attrs["ai_gateway.attempt"] == 1
    assert attempt.status.status_code is StatusCode.UNSET
    assert PROMPT not in span_text(gw.spans())  # no prompt text by default


def test_a_retried_request_has_two_attempt_spans(
    start_traced: Callable[..., Traced], emu: EmulatorServer
) -> None:
    gw = start_traced(
        f"router: {{retries: 1, backoff_base_s: 0.01}}\n"
        f"models:\n  - name: solo\n    deployments:\n      - {dep(emu, 'gpt-solo')}\n"
    )
    emu.add_faults({"kind": "status", "status": 500, "model": "gpt-solo"})
    resp = post_chat(gw.url, "solo")
    assert resp.status_code == 200, resp.text
    server, attempts = by_kind(gw.spans())
    assert [(a.attributes or {})["ai_gateway.attempt"] for a in attempts] == [1, 2]
    first, second = attempts
    assert first.status.status_code is StatusCode.ERROR
    assert (first.attributes or {})["error.type"] == "upstream_error"
    assert second.status.status_code is StatusCode.UNSET
    assert all(
        a.parent is not None and a.parent.span_id == server.context.span_id for a in attempts
    )
    assert (server.attributes or {})["ai_gateway.attempts"] == 2


def test_an_incoming_trace_is_continued_and_propagated_upstream(
    start_traced: Callable[..., Traced], emu: EmulatorServer
) -> None:
    gw = start_traced(emulator_yaml(emu))
    traceparent = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
    resp = httpx.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": "fast", "messages": [{"role": "user", "content": "hi"}]},
        headers={"traceparent": traceparent},
        timeout=30,
    )
    assert resp.status_code == 200
    server, (attempt,) = by_kind(gw.spans())
    assert f"{server.context.trace_id:032x}" == TRACE_ID
    assert server.parent is not None
    assert f"{server.parent.span_id:016x}" == "00f067aa0ba902b7"
    (upstream,) = [r for r in emu.requests() if r["path"].endswith("/chat/completions")]
    headers = {k.lower(): v for k, v in upstream["headers"].items()}
    _, trace_id, parent_id, _ = headers["traceparent"].split("-")
    assert trace_id == TRACE_ID
    assert parent_id == f"{attempt.context.span_id:016x}"  # the upstream's parent: the attempt


def test_a_stream_attempt_span_lasts_until_the_stream_ends(
    start_traced: Callable[..., Traced], emu: EmulatorServer
) -> None:
    gw = start_traced(emulator_yaml(emu))
    body = {
        "model": "fast",
        "messages": [{"role": "user", "content": PROMPT}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with httpx.stream("POST", f"{gw.url}/v1/chat/completions", json=body, timeout=30) as resp:
        assert resp.status_code == 200
        events = [line for line in resp.iter_lines() if line.startswith("data: {")]
    usage = json.loads(events[-1].removeprefix("data: "))["usage"]
    server, (attempt,) = by_kind(gw.spans())
    attrs = dict(attempt.attributes or {})
    assert attrs["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attempt.end_time is not None
    assert server.end_time is not None
    assert attempt.end_time <= server.end_time
    assert PROMPT not in span_text([server, attempt])


def test_an_embeddings_attempt_is_named_for_its_operation(
    start_traced: Callable[..., Traced], emu: EmulatorServer
) -> None:
    gw = start_traced(emulator_yaml(emu))
    resp = httpx.post(
        f"{gw.url}/v1/embeddings", json={"model": "embed", "input": ["a", "b"]}, timeout=30
    )
    assert resp.status_code == 200, resp.text
    _, (attempt,) = by_kind(gw.spans())
    assert attempt.name == "embeddings text-embedding-3-small"
    assert (attempt.attributes or {})["gen_ai.usage.input_tokens"] == resp.json()["usage"][
        "prompt_tokens"
    ]


def test_probes_and_scrapes_are_not_traced(
    start_traced: Callable[..., Traced], emu: EmulatorServer
) -> None:
    gw = start_traced(emulator_yaml(emu))
    for path in ("/health", "/health/ready", "/metrics"):
        assert httpx.get(f"{gw.url}{path}").status_code == 200
    assert httpx.get(f"{gw.url}/v1/models").status_code == 200
    (server,) = gw.spans()
    assert server.name == "GET /v1/models"


def test_tracing_off_imports_no_opentelemetry_on_the_request_path(
    emu: EmulatorServer, tmp_path: Path
) -> None:
    config = tmp_path / "gw.yaml"
    config.write_text(emulator_yaml(emu))
    script = f"""
import asyncio, sys
import httpx
from ai_gateway.app import create_app
from ai_gateway.settings import load_config

def otel() -> set[str]:
    return {{m for m in sys.modules if m.startswith("opentelemetry")}}

async def main() -> None:
    app = create_app(load_config({str(config)!r}))
    # Third-party imports may load parts of OpenTelemetry (redis-py does, for its own
    # optional metrics); the tracing SDK is never among them, and requests load nothing.
    before = otel()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            body = {{"model": "fast", "messages": [{{"role": "user", "content": "hi"}}]}}
            for stream in (False, True):
                resp = await client.post("/v1/chat/completions", json={{**body, "stream": stream}})
                assert resp.status_code == 200, resp.text
            assert (await client.get("/metrics")).status_code == 200
    print(sorted(otel() - before), "opentelemetry.sdk.trace" in sys.modules)

asyncio.run(main())
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[] False"


# -- metrics -------------------------------------------------------------------------------------


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one series in the exposition `text` (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


def test_cost_and_error_counters_move(start_gateway: GatewayFactory, emu: EmulatorServer) -> None:
    gw = start_gateway(emulator_yaml(emu), master_key="obs-master-key-0001")
    auth = {"Authorization": "Bearer obs-master-key-0001"}
    chat_url = f"{gw.url}/v1/chat/completions"
    body = {"model": "fast", "messages": [{"role": "user", "content": "price me"}]}

    usage = httpx.post(chat_url, json=body, headers=auth, timeout=30).json()["usage"]
    assert httpx.post(chat_url, content=b"{not json", headers=auth).status_code == 400
    assert httpx.post(chat_url, json={**body, "model": "nope"}, headers=auth).status_code == 404
    assert httpx.post(chat_url, json=body).status_code == 401
    emu.add_faults({"kind": "status", "status": 500})
    assert httpx.post(chat_url, json=body, headers=auth, timeout=30).status_code == 502
    emu.add_faults({"kind": "error_event", "after_chunks": 3})
    stream = httpx.post(chat_url, json={**body, "stream": True}, headers=auth, timeout=30)
    assert stream.status_code == 200
    assert '"error"' in stream.text
    assert httpx.get(f"{gw.url}/nowhere").status_code == 404

    text = httpx.get(f"{gw.url}/metrics").text
    price_in, price_out = Decimal("0.15"), Decimal("0.60")  # gpt-4o-mini, per million tokens
    expected = (usage["prompt_tokens"] * price_in + usage["completion_tokens"] * price_out) / 10**6
    cost = sample(text, "ai_gateway_cost_usd_total", model="fast", provider="openai")
    # The stream cut by an error is charged too, for the prompt and what it streamed.
    recorded = httpx.get(f"{gw.url}/ai/analytics/usage", params={"start": "1h"}, headers=auth)
    assert cost == pytest.approx(float(recorded.json()["totals"]["cost_usd"]))
    assert cost > expected
    route = "/chat/completions"
    errors = "ai_gateway_errors_total"
    assert sample(text, errors, route=route, type="invalid_request_error", code="") == 1
    assert sample(text, errors, route=route, type="not_found_error", code="model_not_found") == 1
    assert sample(text, errors, route=route, type="authentication_error") == 1
    assert sample(text, errors, route=route, type="upstream_error", code="upstream_error") >= 1
    assert sample(text, errors, route="unmatched", type="not_found_error") == 1
    total = sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == errors and s.labels["route"] == route
    )
    assert total == 5  # bad JSON, unknown model, no key, upstream 500, the error inside a stream


def test_error_labels_stay_bounded_and_unpriced_models_cost_nothing() -> None:
    metrics = Metrics()
    metrics.observe_error("/chat/completions", "invalid_request_error", None)
    metrics.observe_error("/chat/completions", "upstream_error", "code with spaces")
    metrics.observe_cost("fast", "openai", None)
    metrics.observe_cost("fast", "openai", Decimal(0))
    metrics.observe_cost("fast", "openai", Decimal("0.25"))
    text = metrics.render().decode()
    errors = "ai_gateway_errors_total"
    assert sample(text, errors, type="invalid_request_error", code="") == 1
    assert sample(text, errors, type="other", code="other") == 1
    assert "code with spaces" not in text
    assert sample(text, "ai_gateway_cost_usd_total", model="fast") == 0.25


def test_workers_share_one_metrics_view(emulator: EmulatorServer, tmp_path: Path) -> None:
    config = tmp_path / "gw.yaml"
    config.write_text(
        f"models:\n  - {{name: fast, provider: openai, model: gpt-4o-mini, "
        f"api_base: '{emulator.url}/v1', api_key: {EMULATOR_KEY}}}\n"
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    body = {"model": "fast", "messages": [{"role": "user", "content": "count me"}]}
    env = {"TMPDIR": str(tmp_path)}
    args = [str(VENV_BIN / "ai-gateway"), "serve", "--config", str(config), "--port", str(port)]
    with start_process([*args, "--workers", "2"], env=env) as proc:
        wait_http(f"{url}/health", proc=proc, timeout=30)
        assert list(tmp_path.glob("ai-gateway-metrics-*"))
        workers: set[str] = set()
        sent = 0
        while len(workers) < 2 or sent < 10:
            assert sent < 300, "the requests never reached both workers"
            # A new connection each time, so that both workers accept some.
            resp = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)
            assert resp.status_code == 200
            workers.add(resp.headers["x-request-id"][:16])  # the per-process id prefix
            sent += 1
        for _ in range(4):  # whichever worker answers, it reports all of them
            text = httpx.get(f"{url}/metrics").text
            requests = sample(
                text,
                "ai_gateway_requests_total",
                route="/chat/completions",
                model="fast",
                provider="openai",
                status="200",
            )
            assert requests == sent
            assert sample(text, "ai_gateway_tokens_total", direction="input") > 0
        proc.terminate()
        printed = output(proc, timeout=20)
    assert not list(tmp_path.glob("ai-gateway-metrics-*"))  # removed at shutdown
    # One access line per request, the gateway's own: the workers print no uvicorn.access line.
    assert '"logger":"uvicorn.access"' not in printed
    assert printed.count('"event":"request"') >= sent + 4  # and the readiness probes


# -- the access log --------------------------------------------------------------------------


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream, cache_loggers=False)
    yield stream
    structlog.reset_defaults()
    root.handlers[:], root.level = saved[0], saved[1]


def access_lines(stream: io.StringIO, count: int, timeout: float = 5) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = [
            line
            for line in map(json.loads, stream.getvalue().splitlines())
            if line.get("event") == "request"
        ]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.01)


def test_each_request_writes_one_access_log_line(
    start_gateway: GatewayFactory, emu: EmulatorServer, captured_logs: io.StringIO
) -> None:
    gw = start_gateway(emulator_yaml(emu))
    ok = post_chat(gw.url)
    missing = post_chat(gw.url, "nope")
    ok_line, missing_line = access_lines(captured_logs, 2)
    assert ok_line["request_id"] == ok.headers["x-request-id"]
    assert {k: ok_line[k] for k in ("method", "route", "status", "model", "provider")} == {
        "method": "POST",
        "route": "/chat/completions",
        "status": 200,
        "model": "fast",
        "provider": "openai",
    }
    assert ok_line["deployment"] == "fast/0"
    assert ok_line["attempts"] == 1
    assert ok_line["level"] == "info"
    assert 0 < float(ok_line["latency_ms"]) < 30_000
    assert missing_line["status"] == 404
    assert missing_line["error_type"] == "not_found_error"
    assert missing_line["error_code"] == "model_not_found"
    assert missing.status_code == 404
    assert PROMPT not in captured_logs.getvalue()


def test_the_access_log_can_be_turned_off(
    start_gateway: GatewayFactory, emu: EmulatorServer, captured_logs: io.StringIO
) -> None:
    gw = start_gateway(emulator_yaml(emu), access_log=False)
    assert post_chat(gw.url).status_code == 200
    assert access_lines(captured_logs, 1, timeout=0.5) == []
