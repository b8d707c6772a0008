"""Authentication and the admin boundary, before any body is read.

Installed when authentication is on (a master key or a JWT configuration); off, it is not in the
middleware stack at all. Who may call a route is declared in the route table (`api/routes.py`):
public routes need nothing; caller routes need a credential (see `security/authenticator.py`);
admin routes need the master key: any other valid credential gets 403. A path no route matches
needs a credential under /ai/, /v1/ and /admin/ (`api/route_table.py`). The route is the one
`RequestContextMiddleware` matched and put in the scope; a request it did not see is treated as
an admin route (closed). Refusals are audited (`auth.failed`, `access.denied`) without the
credential itself.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from ai_gateway.api.route_table import Access, matched_route
from ai_gateway.errors import GatewayError, PermissionDeniedError
from ai_gateway.observability.metrics import Metrics
from ai_gateway.request_info import RequestInfo
from ai_gateway.security.audit import ACCESS_DENIED, AUTH_FAILED, AuditRecord, Outcome
from ai_gateway.security.authenticator import Authenticator, AuthFailure

AuditSink = Callable[[AuditRecord], None]


def client_ip(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


async def send_error(send: Send, error: GatewayError, scope_type: str = "http") -> None:
    """An OpenAI-style error from pure-ASGI code (outside the exception handlers' reach); a
    WebSocket is closed with 1008 (policy violation) before it is accepted."""
    if scope_type == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": error.code or ""})
        return
    body = error.to_json()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class AuthMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        authenticator: Authenticator,
        metrics: Metrics,
        audit: AuditSink | None = None,
    ) -> None:
        self.app = app
        self._authenticator = authenticator
        self._metrics = metrics
        self._audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        route = matched_route(scope)
        access = route.access if route is not None else Access.ADMIN
        if access is Access.PUBLIC:
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value
                break
        info = RequestInfo.from_scope(scope)
        try:
            principal = await self._authenticator.authenticate(header)
        except AuthFailure as exc:
            self._metrics.auth_failures.labels(exc.reason).inc()
            self._record(scope, info, AUTH_FAILED, "failure", "anonymous", reason=exc.reason)
            await send_error(send, exc, scope["type"])
            return
        except GatewayError as exc:  # the key store or the Auth service's keys are down
            await send_error(send, exc, scope["type"])
            return
        info.principal = principal
        info.client_ip = client_ip(scope)
        if access is Access.ADMIN and not principal.admin:
            self._record(scope, info, ACCESS_DENIED, "denied", principal.actor)
            await send_error(
                send,
                PermissionDeniedError(
                    f"{scope['path']} is an admin route: it needs the gateway's master key.",
                    code="admin_only",
                ),
                scope["type"],
            )
            return
        await self.app(scope, receive, send)

    def _record(
        self,
        scope: Scope,
        info: RequestInfo,
        action: str,
        outcome: Outcome,
        actor: str,
        **details: str,
    ) -> None:
        if self._audit is None:
            return
        self._audit(
            AuditRecord(
                actor=actor,
                action=action,
                outcome=outcome,
                target=None,
                source_ip=client_ip(scope),
                request_id=info.request_id or None,
                details={"method": scope.get("method", ""), "path": scope["path"], **details},
            )
        )
