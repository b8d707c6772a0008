"""Gateway errors in the Anthropic API's shape: `{"type": "error", "error": {"type", "message"},
"request_id"}`, with the gateway's status (which tells whose fault it is).

The `error.type` follows Anthropic's table of statuses (docs "Errors"): 400 (and the other 4xx
without a type of their own) `invalid_request_error`, 401 `authentication_error`, 402
`billing_error`, 403 `permission_error`, 404 `not_found_error`, 413 `request_too_large`, 429
`rate_limit_error`, 503 (an upstream or the gateway overloaded or unreachable) `overloaded_error`,
504 `timeout_error`, any other 5xx `api_error`. The gateway's own `code` (`rate_limit_exceeded`,
`budget_exceeded`, `content_filter`, ...) is kept as `error.code` beside them, an extra field
that Anthropic's SDKs accept and ignore.
"""

from __future__ import annotations

from typing import Any

import orjson

from ai_gateway.errors import GatewayError

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type(status: int) -> str:
    return _TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def error_object(exc: GatewayError) -> dict[str, Any]:
    error: dict[str, Any] = {"type": error_type(exc.status), "message": exc.message}
    if exc.code:
        error["code"] = exc.code
    return error


def error_dict(exc: GatewayError, request_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "error", "error": error_object(exc)}
    if request_id:
        body["request_id"] = request_id
    return body


def error_json(exc: GatewayError, request_id: str | None = None) -> bytes:
    return orjson.dumps(error_dict(exc, request_id))
