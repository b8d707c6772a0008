"""Pure-ASGI middleware: request ids and request metrics (cheap enough for the hot path)."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable
from time import perf_counter

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ai_gateway.observability.metrics import Metrics
from ai_gateway.pipeline.context import RequestInfo

_VALID_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")

# Route labels for metrics: fixed strings, so a client cannot explode label cardinality.
_ROUTES = {
    "/ai/chat/completions": "/chat/completions",
    "/v1/chat/completions": "/chat/completions",
    "/ai/embeddings": "/embeddings",
    "/v1/embeddings": "/embeddings",
    "/ai/models": "/models",
    "/v1/models": "/models",
    "/ai/tokens/count": "/tokens/count",
    "/v1/tokens/count": "/tokens/count",
    "/health": "/health",
    "/health/ready": "/health/ready",
    "/metrics": "/metrics",
    "/openapi.json": "/openapi.json",
}


def route_label(path: str) -> str:
    label = _ROUTES.get(path)
    if label is not None:
        return label
    if path.startswith(("/ai/models/", "/v1/models/")):
        return "/models/{id}"
    return "unmatched"


def request_id_source() -> Callable[[], str]:
    """Unique ids without a syscall per request: a random per-process prefix and a counter."""
    prefix = os.urandom(8).hex()
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter):016x}"


class RequestContextMiddleware:
    """Assigns the request id (honouring a sane incoming `x-request-id`), echoes it in the
    response, and records count and latency by route, model, provider and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self._new_id = request_id_source()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if _VALID_ID.fullmatch(candidate):
                    request_id = candidate
                break
        if not request_id:
            request_id = self._new_id()
        info = RequestInfo(request_id=request_id)
        scope["ai_gateway.info"] = info
        status = 500
        header = (b"x-request-id", request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        in_flight = self.metrics.in_flight
        in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            in_flight.dec()
            self.metrics.observe_request(
                route_label(scope["path"]),
                info.model,
                info.provider,
                status,
                perf_counter() - info.started,
            )
