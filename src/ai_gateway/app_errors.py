"""App assembly, the last-resort error handlers: a `GatewayError` raised by a handler, Starlette's
404 and 405, a client gone (499, for the metrics only) and any other exception (a logged 500
quoting the request id), each rendered in the shape of the route's API: OpenAI's error JSON, or
Anthropic's on the Messages API's routes (the route's dialect, api/route_table.py)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from ai_gateway.api.common import error_response
from ai_gateway.api.messages_render import error_response as messages_error_response
from ai_gateway.api.render import route_headers
from ai_gateway.api.route_table import ANTHROPIC, matched_route
from ai_gateway.errors import GatewayError, InternalError, MethodNotAllowedError, NotFoundError
from ai_gateway.observability.logging import get_logger
from ai_gateway.request_info import RequestInfo

log = get_logger("ai_gateway.app")
Handler = Callable[[Request, Exception], Coroutine[Any, Any, Response]]


def exception_handlers() -> dict[Any, Handler]:
    return {
        GatewayError: _gateway_error,
        HTTPException: _http_error,
        ClientDisconnect: _client_gone,
        Exception: _unexpected,
    }


def _error(
    request: Request, exc: GatewayError, headers: Mapping[str, str] | None = None
) -> Response:
    """The error in the shape of the route's API (OpenAI's, or Anthropic's: api/route_table.py)."""
    route = matched_route(request.scope)
    if route is not None and route.dialect == ANTHROPIC:
        request_id = RequestInfo.from_scope(request.scope).request_id
        return messages_error_response(exc, request_id, headers)
    return error_response(exc, headers=headers)


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return _error(request, exc, route_headers(RequestInfo.from_scope(request.scope)))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return _error(
            request,
            MethodNotAllowedError(f"Method {request.method} is not allowed on {request.url.path}."),
            exc.headers,
        )
    if exc.status_code == 404:
        return _error(
            request,
            NotFoundError(
                f"There is no route {request.url.path}. The API lives under /v1 and /ai "
                "(e.g. POST /v1/chat/completions); see GET /openapi.json.",
                code="route_not_found",
            ),
        )
    return _error(request, InternalError(str(exc.detail)))


async def _client_gone(request: Request, exc: Exception) -> Response:
    return Response(status_code=499)  # nobody is listening; recorded as "client closed request"


async def _unexpected(request: Request, exc: Exception) -> Response:
    info = RequestInfo.from_scope(request.scope)
    log.error(
        "unhandled_error",
        request_id=info.request_id,
        path=request.url.path,
        error_type=type(exc).__name__,
    )
    return _error(
        request,
        InternalError(
            f"The gateway failed unexpectedly; quote request id {info.request_id} to report it."
        ),
    )
