"""Secrets canary: a provider key, a master key and a JWT secret (unique strings without any
credential shape) and a virtual key's secret appear in no log line, no response (body or
header; the one that creates the key aside), no /metrics text, no span, no analytics row and no
audit row, for requests that succeed, that fail at auth upstream (whose error echoes the key
back), that fail upstream otherwise, and that the client got wrong."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
import structlog
from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ai_gateway.observability.logging import configure_logging, secrets_of
from ai_gateway.observability.tracing import Tracing
from harness import EmulatorServer, GatewayServer, LoopThread, config_from_yaml

PROVIDER_KEY = f"canary-provider-{uuid.uuid4().hex}"
MASTER_KEY = f"canary-master-{uuid.uuid4().hex}"
JWT_SECRET = f"canary-jwt-{uuid.uuid4().hex}"
_STATUS = re.compile(r"^/s(\d{3})/")


class EchoingUpstream:
    """An upstream that fails every request with the status named by its path (`/s401/...`),
    in the format of the provider the path belongs to, quoting the key it was sent."""

    def __init__(self) -> None:
        self.echoed = 0
        self._thread = LoopThread("echo-upstream")
        self._runner, self.port = self._thread.run(self._start())
        self.url = f"http://127.0.0.1:{self.port}"

    async def _start(self) -> tuple[web.AppRunner, int]:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, runner.addresses[0][1]

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        key = (
            request.headers.get("x-api-key")
            or request.headers.get("x-goog-api-key")
            or request.headers.get("authorization", "").removeprefix("Bearer ")
        )
        self.echoed += key == PROVIDER_KEY
        match = _STATUS.match(request.path)
        status = int(match.group(1)) if match else 500
        message = f"Incorrect API key provided: {key}. Your key {key} was rejected."
        if "/v1/messages" in request.path:
            body: object = {"type": "error", "error": {"type": "api_error", "message": message}}
        elif "/v1beta/" in request.path:
            body = {"error": {"code": status, "message": message, "status": "INVALID_ARGUMENT"}}
        else:
            body = {"error": {"message": message, "type": "invalid_request_error", "code": None}}
        return web.json_response(body, status=status, headers={"x-echo": key})

    def stop(self) -> None:
        self._thread.run(self._runner.cleanup())
        self._thread.stop()


@pytest.fixture
def upstream() -> Iterator[EchoingUpstream]:
    server = EchoingUpstream()
    yield server
    server.stop()


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    yield io.StringIO()
    structlog.reset_defaults()
    root.handlers[:], root.level = saved[0], saved[1]


def config_text(emu: EmulatorServer, up: EchoingUpstream) -> str:
    def model(name: str, provider: str, upstream_model: str, base: str) -> str:
        return (
            f"  - {{name: {name}, provider: {provider}, model: {upstream_model}, "
            f"api_base: '{base}', api_key: '{PROVIDER_KEY}'}}\n"
        )

    return (
        f"security: {{jwt: {{secret: '{JWT_SECRET}'}}}}\n"
        "router: {retries: 1, backoff_base_s: 0.01}\n"
        "models:\n"
        + model("ok", "openai", "gpt-4o-mini", f"{emu.url}/v1")
        + model("embed", "openai", "text-embedding-3-small", f"{emu.url}/v1")
        + "".join(
            model(f"openai-{s}", "openai", "gpt-4o-mini", f"{up.url}/s{s}")
            for s in (400, 401, 403, 404, 429, 500)
        )
        + model("embed-400", "openai", "text-embedding-3-small", f"{up.url}/s400")
        + model("claude-400", "anthropic", "claude-sonnet-4-5", f"{up.url}/s400")
        + model("claude-401", "anthropic", "claude-sonnet-4-5", f"{up.url}/s401")
        + model("gemini-400", "gemini", "gemini-2.5-flash", f"{up.url}/s400")
        + model("gemini-403", "gemini", "gemini-2.5-flash", f"{up.url}/s403")
    )


def test_canary_keys_never_leave_the_gateway(
    tmp_path: Path, emu: EmulatorServer, upstream: EchoingUpstream, log_stream: io.StringIO
) -> None:
    config = config_from_yaml(
        tmp_path, config_text(emu, upstream), {"master_key": MASTER_KEY, "log_level": "debug"}
    )
    configure_logging(
        "debug", "json", secrets=secrets_of(config), stream=log_stream, cache_loggers=False
    )
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    gw = GatewayServer(config, tracing=Tracing(provider))
    seen: list[str] = []  # everything the clients received
    try:
        auth = {"Authorization": f"Bearer {MASTER_KEY}"}
        with httpx.Client(base_url=gw.url, headers=auth, timeout=30) as client:

            def send(method: str, path: str, **kwargs: object) -> httpx.Response:
                resp = client.request(method, path, **kwargs)  # type: ignore[arg-type]
                seen.append(f"{resp.status_code} {dict(resp.headers)} {resp.text}")
                return resp

            def chat(model: str, **extra: object) -> httpx.Response:
                body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
                return send("POST", "/v1/chat/completions", json=body)

            assert chat("ok").status_code == 200
            assert chat("ok", stream=True).status_code == 200
            assert send("POST", "/v1/embeddings", json={"model": "embed", "input": "x"}).is_success
            for status in (400, 401, 403, 404, 429, 500):
                assert chat(f"openai-{status}").status_code >= 400
            assert chat("openai-401", stream=True).status_code == 502
            bad = chat("openai-400")
            assert bad.status_code == 400
            assert "[redacted]" in bad.json()["error"]["message"]  # echoed, then scrubbed
            assert send("POST", "/v1/embeddings", json={"model": "embed-400", "input": "x"})
            for model in ("claude-400", "claude-401", "gemini-400", "gemini-403"):
                assert chat(model).status_code >= 400
            assert chat("gemini-400", stream=True).status_code == 400
            # The client's own mistakes.
            assert send("POST", "/v1/chat/completions", content=b"{oops").status_code == 400
            assert chat("ok", temperature="hot").status_code == 400
            assert chat("missing-model").status_code == 404
            for wrong in (f"Bearer {MASTER_KEY}x", "Bearer nope", ""):
                resp = send("GET", "/v1/models", headers={"Authorization": wrong})
                assert resp.status_code == 401
            # A virtual key and a JWT, used right and wrong. The response that creates the key
            # holds its secret, by design: it is the one response not in `seen`.
            created = client.post("/admin/keys", json={"user": "canary-user"})
            assert created.status_code == 201
            virtual = created.json()["key"]
            as_key = {"Authorization": f"Bearer {virtual}"}
            body = {"model": "ok", "messages": [{"role": "user", "content": "hi"}]}
            assert send("POST", "/v1/chat/completions", json=body, headers=as_key).is_success
            assert (
                send(
                    "POST",
                    "/v1/chat/completions",
                    json={**body, "model": "openai-401"},
                    headers=as_key,
                ).status_code
                >= 400
            )
            wrong = {"Authorization": f"Bearer {virtual[:-3]}xyz"}
            assert send("POST", "/v1/chat/completions", json=body, headers=wrong).status_code == 401
            assert send("GET", "/admin/keys", headers=as_key).status_code == 403
            claims = {"sub": "jwt-user", "exp": int(time.time()) + 60}
            good_jwt = {"Authorization": f"Bearer {jwt.encode(claims, JWT_SECRET)}"}
            assert send("POST", "/v1/chat/completions", json=body, headers=good_jwt).is_success
            forged = {"Authorization": f"Bearer {jwt.encode(claims, JWT_SECRET + 'x')}"}
            assert (
                send("POST", "/v1/chat/completions", json=body, headers=forged).status_code == 401
            )
            assert send("GET", "/ai/analytics/usage").status_code == 200  # flushes the writer
            audit = send("GET", "/admin/audit", params={"limit": "1000"}).text
            assert "auth.failed" in audit
            assert send("GET", "/health/ready").status_code == 200
            metrics = send("GET", "/metrics").text
        deadline = time.monotonic() + 5  # the last lines are written just after the response
        while log_stream.getvalue().count('"event":"request"') < len(seen) + 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        gw.stop()
        provider.shutdown()

    logs = log_stream.getvalue()
    spans = json.dumps([json.loads(s.to_json()) for s in exporter.get_finished_spans()])
    assert upstream.echoed >= 10  # the upstream really did quote the key back
    assert logs.count('"event":"request"') == len(seen) + 1  # there were lines to leak into
    assert "upstream_error" in logs
    assert "ai_gateway_errors_total" in metrics
    assert len(exporter.get_finished_spans()) > len(seen)  # requests and their attempts
    stored = stored_rows()
    assert "canary-user" in stored  # there were rows to leak into
    for secret in (PROVIDER_KEY, MASTER_KEY, JWT_SECRET, virtual, virtual.partition("_")[2]):
        assert secret not in logs
        assert secret not in "\n".join(seen)
        assert secret not in metrics
        assert secret not in spans
        assert secret not in stored


def stored_rows() -> str:
    """Every row of the analytics database (usage, feedback, keys, audit) as text."""
    path = Path(os.environ["AI_GATEWAY_DATA_DIR"]) / "analytics.db"
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows = [repr(row) for t in tables for row in conn.execute(f"SELECT * FROM {t}")]  # noqa: S608
    return "\n".join(rows)
