"""Pure-ASGI middleware: request ids, request metrics, the access log and the request's trace
span (cheap enough for the hot path; tracing and the access log cost nothing when off)."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable
from functools import partial
from time import perf_counter
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ai_gateway.api.route_table import ROUTE_KEY, RouteTable
from ai_gateway.errors import InternalError
from ai_gateway.observability.logging import event_writer
from ai_gateway.observability.metrics import Metrics
from ai_gateway.observability.tracing import Tracing
from ai_gateway.request_info import RequestInfo

_VALID_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")

# A client-closed request (499) has nobody to see an error.
_UNSEEN = 499
_UNEXPECTED = (InternalError.type, InternalError.default_code or "")


def error_kind(body: bytes | None) -> tuple[str, str]:
    """`(type, code)` of an OpenAI-style error body; an unreadable one is an internal error."""
    if body:
        try:
            error = orjson.loads(body).get("error")
        except (orjson.JSONDecodeError, AttributeError):
            error = None
        if isinstance(error, dict) and isinstance(error.get("type"), str):
            code = error.get("code")
            return error["type"], code if isinstance(code, str) else ""
    return _UNEXPECTED


def request_id_source() -> Callable[[], str]:
    """Unique ids without a syscall per request: a random per-process prefix and a counter."""
    prefix = os.urandom(8).hex()
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter):016x}"


class RequestContextMiddleware:
    """Assigns the gateway's request id (`x-gateway-request-id`), keeps a sane incoming
    `x-request-id` as the client's (echoed as `x-request-id`; without one, that header is the
    gateway's id), records count and latency by route, model, provider and status, counts the
    errors clients receive, writes the access log line (event `request`) and, when tracing is
    on, wraps the request in its server span. The route's label, span name and access rule come
    from the route table (`api/routes.py`), matched once per request."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        *,
        routes: RouteTable,
        tracing: Tracing | None = None,
        access_log: bool = True,
        extra_headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        self.app = app
        self._extra_headers = extra_headers
        self.metrics = metrics
        self._routes = routes
        self.tracing = tracing
        self._new_id = request_id_source()
        # Built with the app's middleware stack, at the first request: logging is configured.
        self._log = event_writer("ai_gateway.access") if access_log else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":  # for the auth middleware
                scope[ROUTE_KEY] = self._routes.match(scope["path"])
            await self.app(scope, receive, send)
            return
        # Matched once, here; the auth middleware reads the answer from the scope.
        matched = self._routes.match(scope["path"])
        scope[ROUTE_KEY] = matched
        client_id: str | None = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if _VALID_ID.fullmatch(candidate):
                    client_id = candidate
                break
        # The gateway's own id is unique (it keys the usage record); a client's id may repeat
        # (retry libraries and proxies resend it) and is kept beside it for correlation.
        request_id = self._new_id()
        info = RequestInfo(request_id=request_id, client_request_id=client_id)
        scope["ai_gateway.info"] = info
        status = 500
        error_body: bytes | None = None  # the first body bytes of an error response
        encoded = request_id.encode("latin-1")
        # The conventional name (the client's id echoed, else the gateway's), and the gateway's
        # own (the id to quote for feedback).
        id_headers = (
            (b"x-request-id", client_id.encode("latin-1") if client_id else encoded),
            (b"x-gateway-request-id", encoded),
            *self._extra_headers,
        )

        async def send_with_id(message: Message) -> None:
            nonlocal status, error_body
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *id_headers]
            elif status >= 400 and error_body is None:
                error_body = message.get("body", b"")
            await send(message)

        span = None
        if self.tracing is not None and matched.traced:
            span = self.tracing.start_request(scope, matched.template, request_id)
        in_flight = self.metrics.requests_in_flight
        in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            in_flight.dec()
            seconds = perf_counter() - info.started
            route = matched.label
            self.metrics.observe_request(route, info.model, info.provider, status, seconds)
            error = None
            if status >= 400 and status != _UNSEEN:
                error = error_kind(error_body)
                self.metrics.observe_error(route, *error)
            if self._log is not None:  # the line's fields are gathered when it is rendered
                self._log(
                    "request",
                    partial(access_fields, scope["method"], route, status, seconds, info, error),
                )
            if span is not None:
                span.end(status, info, error)


def access_fields(
    method: str,
    route: str,
    status: int,
    seconds: float,
    info: RequestInfo,
    error: tuple[str, str] | None,
) -> dict[str, Any]:
    """The access log line's fields (event `request`)."""
    trace = info.trace
    fields: dict[str, Any] = {
        "request_id": info.request_id,
        "method": method,
        "route": route,
        "status": status,
        "latency_ms": round(seconds * 1000, 3),
    }
    if info.model:
        fields["model"] = info.model
        fields["provider"] = info.provider
        fields["deployment"] = info.deployment
    if trace is not None:
        fields["attempts"] = trace.attempts
    if info.client_request_id is not None:
        fields["client_request_id"] = info.client_request_id
    principal = info.principal  # set by authentication
    if principal is not None and principal.user:
        fields["user"] = principal.user
    if error is not None:
        fields["error_type"], fields["error_code"] = error
    return fields
