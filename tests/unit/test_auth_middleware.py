"""The auth middleware on its own: which paths it guards, the admin boundary, and a WebSocket
refused before it is accepted (no WebSocket route exists yet; one added later is covered)."""

from __future__ import annotations

from typing import Any

from starlette.types import Message, Receive, Scope, Send

from ai_gateway.api.auth import AuthMiddleware
from ai_gateway.observability.metrics import Metrics
from ai_gateway.security.audit import AuditRecord
from ai_gateway.security.authenticator import Authenticator

MASTER = "sk-master-unit-0a1b2c3d"


async def call(scope_type: str, path: str, authorization: str | None) -> tuple[list[Message], bool]:
    reached = False
    audit: list[AuditRecord] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal reached
        reached = True

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    headers = [(b"authorization", authorization.encode())] if authorization else []
    scope: dict[str, Any] = {"type": scope_type, "path": path, "headers": headers}
    middleware = AuthMiddleware(app, Authenticator(MASTER, None), Metrics(), audit.append)
    await middleware(scope, receive, send)
    return sent, reached


async def test_a_websocket_without_credentials_is_closed_with_policy_violation() -> None:
    sent, reached = await call("websocket", "/v1/realtime", None)
    assert not reached
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "missing_api_key"}]
    _, reached = await call("websocket", "/v1/realtime", f"Bearer {MASTER}")
    assert reached


async def test_open_paths_and_guarded_paths() -> None:
    for path in ("/health", "/metrics", "/dashboard", "/openapi.json"):
        _, reached = await call("http", path, None)
        assert reached, path
    for path in ("/v1/models", "/ai/chat/completions", "/admin/keys"):
        sent, reached = await call("http", path, "Bearer wrong")
        assert not reached, path
        assert sent[0]["status"] == 401
