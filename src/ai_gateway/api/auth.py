"""Authentication and the admin boundary, before any body is read.

Installed when authentication is on (a master key or a JWT configuration); off, it is not in the
middleware stack at all. Who may call a route is declared in the route table (`api/routes.py`):
public routes need nothing; caller routes need a credential (see `security/authenticator.py`);
admin routes need the master key: any other valid credential gets 403. A path no route matches
needs a credential under /ai/, /v1/ and /admin/ (`api/route_table.py`). The route is the one
`RequestContextMiddleware` matched and put in the scope; a request it did not see is treated as
an admin route (closed). Refusals are audited (`auth.failed`, `access.denied`) without the
credential itself.

A WebSocket (`api/ws.py`) may also carry its credential as the subprotocol `bearer.<credential>`
(browsers cannot set headers on one); one that carries none is let through to a WebSocket route,
which takes its credential from the first message and checks it with the callable this puts in
the scope (`socket_authenticator`): the same checks, audit and metrics.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

from starlette.types import ASGIApp, Receive, Scope, Send

from ai_gateway.api.route_table import ANTHROPIC, Access, matched_route
from ai_gateway.errors import GatewayError, PermissionDeniedError
from ai_gateway.messages.errors import error_json
from ai_gateway.observability.metrics import Metrics
from ai_gateway.request_info import RequestInfo
from ai_gateway.security.audit import ACCESS_DENIED, AUTH_FAILED, AuditRecord, Outcome
from ai_gateway.security.authenticator import Authenticator, AuthFailure
from ai_gateway.security.principal import Principal

AuditSink = Callable[[AuditRecord], None]
# An `Authorization` header value to its caller, or a GatewayError (401, 503): for a WebSocket
# that authenticates with its first message.
SocketAuth = Callable[[bytes], Awaitable[Principal]]
_SOCKET_AUTH_KEY = "ai_gateway.socket_auth"
BEARER_PROTOCOL = "bearer."


def bearer_subprotocol(scope: Scope) -> str | None:
    """A WebSocket's `bearer.<credential>` subprotocol, as the client offered it."""
    for protocol in scope.get("subprotocols") or ():
        if protocol.startswith(BEARER_PROTOCOL) and len(protocol) > len(BEARER_PROTOCOL):
            return str(protocol)
    return None


def socket_authenticator(scope: Scope) -> SocketAuth | None:
    """The check a WebSocket opened without a credential must pass (None: none needed)."""
    found = scope.get(_SOCKET_AUTH_KEY)
    return found if callable(found) else None


def client_ip(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


async def send_error(
    send: Send,
    error: GatewayError,
    scope_type: str = "http",
    denial: bool = False,
    body: bytes | None = None,
) -> None:
    """An OpenAI-style error (or `body`) from pure-ASGI code (outside the exception handlers'
    reach). A
    WebSocket is refused before it is accepted: with the same HTTP error when the server can
    send one (`denial`, the ASGI `websocket.http.response` extension), else closed with 1008
    (policy violation), which the server answers with a 403."""
    prefix = "http"
    if scope_type == "websocket":
        if not denial:
            await send({"type": "websocket.close", "code": 1008, "reason": error.code or ""})
            return
        prefix = "websocket.http"
    body = body if body is not None else error.to_json()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()]
    await send({"type": prefix + ".response.start", "status": error.status, "headers": headers})
    await send({"type": prefix + ".response.body", "body": body})


def can_deny(scope: Scope) -> bool:
    """Whether the server lets a WebSocket be refused with an HTTP response."""
    return "websocket.http.response" in (scope.get("extensions") or {})


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
        anthropic = route is not None and route.dialect == ANTHROPIC
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value
                break
            if name == b"x-api-key" and anthropic and header is None:
                # Anthropic's SDKs send the key so; `Authorization` wins when both are sent.
                header = b"Bearer " + value
        socket = scope["type"] == "websocket"
        if header is None and socket:
            protocol = bearer_subprotocol(scope)
            if protocol is not None:
                header = b"Bearer " + protocol[len(BEARER_PROTOCOL) :].encode("latin-1")
            elif route is not None and route.websocket:  # it may authenticate once open
                scope[_SOCKET_AUTH_KEY] = partial(self._authenticate, scope)
                await self.app(scope, receive, send)
                return
        denial = socket and can_deny(scope)
        try:
            principal = await self._authenticate(scope, header)
        except GatewayError as exc:
            body = None
            if anthropic:
                body = error_json(exc, RequestInfo.from_scope(scope).request_id or None)
            await send_error(send, exc, scope["type"], denial, body)
            return
        info = RequestInfo.from_scope(scope)
        if access is Access.ADMIN and not principal.admin:
            self._record(scope, info, ACCESS_DENIED, "denied", principal.actor)
            await send_error(
                send,
                PermissionDeniedError(
                    f"{scope['path']} is an admin route: it needs the gateway's master key.",
                    code="admin_only",
                ),
                scope["type"],
                denial,
            )
            return
        await self.app(scope, receive, send)

    async def _authenticate(self, scope: Scope, header: bytes | None) -> Principal:
        """The caller, set on the request's info; a refused credential is counted and
        audited. Raises the GatewayError to answer with."""
        info = RequestInfo.from_scope(scope)
        try:
            principal = await self._authenticator.authenticate(header)
        except AuthFailure as exc:
            self._metrics.auth_failures.labels(exc.reason).inc()
            self._record(scope, info, AUTH_FAILED, "failure", "anonymous", reason=exc.reason)
            raise
        # (any other GatewayError: the key store or the Auth service's keys are down)
        info.principal = principal
        info.client_ip = client_ip(scope)
        return principal

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
