"""The route table: every route of the app comes from it, the middleware and auth read their
answers from it, and one added entry is a whole endpoint (both prefixes, label, access, span)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient

import ai_gateway.app as app_module
from ai_gateway.api.openapi import build_openapi
from ai_gateway.api.route_table import Access, RouteEntry, RouteTable
from ai_gateway.api.routes import Handlers, gateway_routes
from ai_gateway.observability.tracing import Tracing
from ai_gateway.settings import load_config

MASTER = "sk-master-routes-0a1b2c3d"

# Every path the gateway serves (with the master key set) and its `route` label: the labels
# the metrics and access log had before the table, kept.
LABELS = {
    "/ai/chat/completions": "/chat/completions",
    "/v1/chat/completions": "/chat/completions",
    "/ai/embeddings": "/embeddings",
    "/v1/embeddings": "/embeddings",
    "/ai/models": "/models",
    "/v1/models": "/models",
    "/ai/models/openai/gpt-4o": "/models/{id}",
    "/v1/models/fast": "/models/{id}",
    "/ai/tokens/count": "/tokens/count",
    "/v1/tokens/count": "/tokens/count",
    "/health": "/health",
    "/health/ready": "/health/ready",
    "/metrics": "/metrics",
    "/openapi.json": "/openapi.json",
    "/ai/feedback": "/feedback",
    "/dashboard": "/dashboard",
    "/dashboard/app.js": "/dashboard",
    "/ai/analytics/usage": "/analytics",
    "/ai/analytics/timeseries": "/analytics",
    "/ai/analytics/prompts": "/analytics",
    "/admin/keys": "/admin",
    "/admin/keys/0123456789ab/rotate": "/admin",
    "/admin/audit": "/admin",
    "/v1/feedback": "unmatched",
    "/nowhere": "unmatched",
}


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_GATEWAY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AI_GATEWAY_MASTER_KEY", MASTER)


def table_of(app: Starlette) -> RouteTable:
    table = app.state.routes
    assert isinstance(table, RouteTable)
    return table


def test_every_route_of_the_app_comes_from_the_table(env: None) -> None:
    app = app_module.create_app(load_config(), tracing=None)
    table = table_of(app)
    assert app.router.routes == table.routes  # the router mounts the table's routes, no others
    http = [r for r in app.router.routes if isinstance(r, Route)]
    served = {(r.path, method) for r in http for method in r.methods or ()}
    declared = {(path, method) for e in table.entries for path in e.paths() for method in e.methods}
    assert served - {(path, "HEAD") for path, _ in served} == declared
    sockets = {r.path for r in app.router.routes if isinstance(r, WebSocketRoute)}
    assert sockets == {path for e in table.entries if e.websocket for path in e.paths()}
    assert sockets == {"/ai/ws", "/v1/ws", "/ai/responses", "/v1/responses"}
    assert table.match("/v1/ws").websocket
    # The Responses WebSocket shares its path with POST: it authenticates at the upgrade.
    assert not table.match("/v1/responses").websocket
    for path, label in LABELS.items():
        assert table.match(path).label == label, path


def test_the_openapi_document_describes_only_routes_of_the_table(env: None) -> None:
    table = table_of(app_module.create_app(load_config(), tracing=None))
    for path, operations in build_openapi()["paths"].items():
        matched = table.match(path)
        assert matched.template == path, path
        # The admin routes it documents: the analytics reports, prompt templates and chains.
        documented_admin = (
            "/ai/analytics/",
            "/ai/prompts",
            "/v1/prompts",
            "/ai/chains",
            "/v1/chains",
        )
        assert matched.access is not Access.ADMIN or path.startswith(documented_admin)
        for method in operations:
            assert any(
                method.upper() in e.methods for e in table.entries if path in templates(e)
            ), (path, method)


def templates(entry: RouteEntry) -> set[str]:
    return {path.replace(":path}", "}").replace(":str}", "}") for path in entry.paths()}


async def echo(request: Request) -> Response:
    return PlainTextResponse("echo")


@pytest.fixture
def spans() -> Iterator[tuple[Tracing, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield Tracing(provider), exporter
    provider.shutdown()


def test_one_added_entry_is_a_whole_endpoint(
    env: None,
    monkeypatch: pytest.MonkeyPatch,
    spans: tuple[Tracing, InMemorySpanExporter],
) -> None:
    def with_echo(handlers: Handlers) -> RouteTable:
        entry = RouteEntry("/echo/{word}", ("POST",), echo, Access.CALLER, "/echo", api=True)
        return RouteTable([*gateway_routes(handlers).entries, entry])

    monkeypatch.setattr(app_module, "gateway_routes", with_echo)  # the one edit
    tracing, exporter = spans
    app = app_module.create_app(load_config(), tracing=tracing)
    master = {"authorization": f"Bearer {MASTER}"}
    with TestClient(app) as client:
        for prefix in ("/ai", "/v1"):
            assert client.post(f"{prefix}/echo/hi").status_code == 401  # its access rule
            answer = client.post(f"{prefix}/echo/hi", headers=master)
            assert answer.status_code == 200
            assert answer.text == "echo"
        metrics = client.get("/metrics").text
    assert 'route="/echo",status="200"' in metrics
    assert 'route="/echo",status="401"' in metrics
    assert "unmatched" not in metrics
    names = {span.name for span in exporter.get_finished_spans()}
    assert {"POST /ai/echo/{word}", "POST /v1/echo/{word}"} <= names


def test_routes_for_one_path_must_agree_on_label_and_access() -> None:
    RouteTable(
        [
            RouteEntry("/x", ("GET",), echo, Access.ADMIN, "/x"),
            RouteEntry("/x", ("POST",), echo, Access.ADMIN, "/x"),
        ]
    )
    with pytest.raises(ValueError, match="/x"):
        RouteTable(
            [
                RouteEntry("/x", ("GET",), echo, Access.ADMIN, "/x"),
                RouteEntry("/x", ("POST",), echo, Access.CALLER, "/x"),
            ]
        )


def test_a_route_an_earlier_pattern_shadows_is_refused() -> None:
    with pytest.raises(ValueError, match="shadowed"):
        RouteTable(
            [
                RouteEntry("/items/{name}", ("GET",), echo, Access.CALLER, "/items"),
                RouteEntry("/items/special", ("GET",), echo, Access.PUBLIC, "/special"),
            ]
        )


def test_probes_and_scrapes_are_not_traced(
    env: None, spans: tuple[Tracing, InMemorySpanExporter]
) -> None:
    tracing, exporter = spans
    with TestClient(app_module.create_app(load_config(), tracing=tracing)) as client:
        for path in ("/health", "/health/ready", "/metrics", "/openapi.json", "/nowhere"):
            client.get(path)
    assert sorted(span.name for span in exporter.get_finished_spans()) == [
        "GET",  # unmatched: no route to name it by
        "GET /openapi.json",
    ]
