"""The auth middleware on its own (behind the request-context middleware that matches the
route): which paths it guards, the admin boundary, and a WebSocket refused before it is accepted
(no WebSocket route exists yet; one added later is covered)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Message, Receive, Scope, Send

from ai_gateway.api.auth import AuthMiddleware
from ai_gateway.api.middleware import RequestContextMiddleware
from ai_gateway.api.route_table import Access, RouteEntry, RouteTable
from ai_gateway.app import create_app
from ai_gateway.observability.metrics import Metrics
from ai_gateway.security.audit import AuditRecord
from ai_gateway.security.authenticator import Authenticator
from ai_gateway.security.principal import Principal
from ai_gateway.settings import load_config

MASTER = "sk-master-unit-0a1b2c3d"
USER = "sk-user-unit-0a1b2c3d"


class TwoCallers(Authenticator):
    """The master key, and one non-admin caller (a JWT user, without a JWKS to fetch)."""

    async def authenticate(self, header: bytes | None) -> Principal:
        if header == f"Bearer {USER}".encode():
            return Principal("jwt", user="alice")
        return await super().authenticate(header)


@pytest.fixture
def gateway_routes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RouteTable:
    monkeypatch.setenv("AI_GATEWAY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AI_GATEWAY_MASTER_KEY", MASTER)  # the admin routes exist
    table = create_app(load_config(), tracing=None).state.routes
    assert isinstance(table, RouteTable)
    return table


async def call(
    routes: RouteTable, scope_type: str, path: str, authorization: str | None
) -> tuple[list[Message], bool, list[AuditRecord]]:
    reached = False
    audit: list[AuditRecord] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal reached
        reached = True
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    headers = [(b"authorization", authorization.encode())] if authorization else []
    scope: dict[str, Any] = {"type": scope_type, "path": path, "headers": headers, "method": "GET"}
    auth = AuthMiddleware(app, TwoCallers(MASTER, None), Metrics(), audit.append)
    stack = RequestContextMiddleware(auth, Metrics(), routes=routes, access_log=False)
    await stack(scope, receive, send)
    return sent, reached, audit


async def test_a_websocket_without_credentials_is_closed_with_policy_violation(
    gateway_routes: RouteTable,
) -> None:
    sent, reached, _ = await call(gateway_routes, "websocket", "/v1/realtime", None)
    assert not reached
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "missing_api_key"}]
    _, reached, _ = await call(gateway_routes, "websocket", "/v1/realtime", f"Bearer {MASTER}")
    assert reached


async def test_open_paths_and_guarded_paths(gateway_routes: RouteTable) -> None:
    for path in ("/health", "/health/ready", "/metrics", "/dashboard", "/dashboard/app.js"):
        _, reached, _ = await call(gateway_routes, "http", path, None)
        assert reached, path
    for path in ("/openapi.json", "/nowhere", "/v1x/models"):
        _, reached, _ = await call(gateway_routes, "http", path, None)
        assert reached, path
    guarded = (
        "/v1/models",
        "/ai/models/openai/gpt-4o",
        "/ai/chat/completions",
        "/v1/embeddings",
        "/v1/tokens/count",
        "/ai/feedback",
        "/admin/keys",
        "/admin/keys/0123456789ab/rotate",
        "/ai/analytics/usage",
        "/v1/no-such-route",  # unmatched, under a guarded prefix: no hint that it is missing
        "/admin/nothing",
    )
    for path in guarded:
        sent, reached, audit = await call(gateway_routes, "http", path, "Bearer wrong")
        assert not reached, path
        assert sent[0]["status"] == 401
        assert [r.action for r in audit] == ["auth.failed"]


async def test_admin_routes_take_only_the_master_key(gateway_routes: RouteTable) -> None:
    admin = ("/admin/keys", "/admin/keys/0123456789ab", "/admin/audit", "/ai/analytics/errors")
    for path in admin:
        sent, reached, audit = await call(gateway_routes, "http", path, f"Bearer {USER}")
        assert not reached, path
        assert sent[0]["status"] == 403
        assert [r.action for r in audit] == ["access.denied"]
        _, reached, _ = await call(gateway_routes, "http", path, f"Bearer {MASTER}")
        assert reached, path
    for path in ("/v1/chat/completions", "/ai/feedback", "/v1/models/fast"):
        _, reached, _ = await call(gateway_routes, "http", path, f"Bearer {USER}")
        assert reached, path


async def test_a_request_the_context_middleware_did_not_match_is_treated_as_admin() -> None:
    reached = False

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal reached
        reached = True

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request"}

    auth = AuthMiddleware(app, TwoCallers(MASTER, None), Metrics())
    scope = {"type": "http", "path": "/health", "method": "GET"}
    await auth({**scope, "headers": [(b"authorization", f"Bearer {USER}".encode())]}, receive, send)
    assert not reached
    assert sent[0]["status"] == 403


async def endpoint(request: Request) -> Response:
    return PlainTextResponse("ok")


def test_the_access_rule_is_the_route_entrys() -> None:
    table = RouteTable([RouteEntry("/v1/open", ("GET",), endpoint, Access.PUBLIC, "/open")])
    assert table.match("/v1/open").access is Access.PUBLIC  # a public route under /v1
    assert table.match("/v1/other").access is Access.CALLER
