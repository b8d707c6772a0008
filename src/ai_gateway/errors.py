"""The gateway's error tree and its mapping to OpenAI-style error JSON.

Every error a client can see is one of these. The HTTP status tells whose fault it is:
4xx the client's, 502/503/504 an upstream provider's or the gateway's configuration, 500 ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import orjson


class GatewayError(Exception):
    """Base class: carries everything needed to render the OpenAI-style error body."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "api_error"
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.headers: dict[str, str] = dict(headers or {})
        # For the operator's logs only (e.g. the upstream address); never sent to the client.
        self.internal_detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


# --- the client's fault -------------------------------------------------------------------------


class InvalidRequestError(GatewayError):
    status = 400
    type = "invalid_request_error"


class AuthenticationError(GatewayError):
    status = 401
    type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDeniedError(GatewayError):
    """Authenticated, but this caller may not do this (an admin route, a model not allowed)."""

    status = 403
    type = "permission_error"
    default_code = "permission_denied"


class BudgetExceededError(GatewayError):
    """The key's, user's or team's spend for the period has reached its budget."""

    status = 402
    type = "insufficient_quota"
    default_code = "budget_exceeded"


class RateLimitError(GatewayError):
    """The gateway's own limit (not the provider's): carries Retry-After and x-ratelimit-*."""

    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class GuardrailBlockedError(InvalidRequestError):
    """A content rule with the action `block` matched (the matched text is never repeated)."""

    default_code = "content_filter"


class NotFoundError(GatewayError):
    status = 404
    type = "not_found_error"


class ModelNotFoundError(NotFoundError):
    default_code = "model_not_found"


class ConflictError(GatewayError):
    """The request conflicts with what exists (a name already taken)."""

    status = 409
    type = "invalid_request_error"
    default_code = "conflict"


class MethodNotAllowedError(GatewayError):
    status = 405
    type = "invalid_request_error"
    default_code = "method_not_allowed"


class PayloadTooLargeError(GatewayError):
    status = 413
    type = "invalid_request_error"
    default_code = "request_too_large"


class RequestTimeoutError(GatewayError):
    """The client did not send its request (headers or body) in time; the connection closes."""

    status = 408
    type = "invalid_request_error"
    default_code = "request_timeout"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"connection": "close"})


class UpstreamError(GatewayError):
    """The provider failed; 502 unless a subclass says otherwise."""

    status = 502
    type = "upstream_error"
    default_code: ClassVar[str | None] = "upstream_error"


class UpstreamBadRequestError(UpstreamError):
    """The provider rejected the request as invalid: the client's request, so 400."""

    status = 400
    type = "invalid_request_error"
    default_code = None


class UpstreamNotFoundError(UpstreamError):
    """The provider does not know the model the client named directly."""

    status = 404
    type = "not_found_error"
    default_code = "model_not_found"


class UpstreamPayloadTooLargeError(UpstreamError):
    """The provider says the request is too large for it."""

    status = 413
    type = "invalid_request_error"
    default_code = "request_too_large"


class UpstreamAuthError(UpstreamError):
    """The provider rejected the gateway's credentials: the gateway's configuration is wrong."""

    default_code = "upstream_authentication_failed"


class UpstreamRateLimitError(UpstreamError):
    status = 429
    type = "rate_limit_error"
    default_code = "upstream_rate_limited"


class UpstreamUnavailableError(UpstreamError):
    """The provider says it is overloaded or unavailable (503, Anthropic's 529)."""

    status = 503
    default_code = "upstream_unavailable"


class UpstreamConnectionError(UpstreamError):
    default_code = "upstream_connection_error"


class UpstreamTimeoutError(UpstreamError):
    status = 504
    default_code = "upstream_timeout"


class UpstreamProtocolError(UpstreamError):
    """The provider's answer was not what its API promises (bad JSON, truncated stream)."""

    default_code = "upstream_protocol_error"


class ContentFilteredError(UpstreamError):
    """The provider refused the prompt on safety grounds: the client's content, so 400."""

    status = 400
    type = "invalid_request_error"
    default_code = "content_filter"


# --- ours ----------------------------------------------------------------------------------------


class ServiceUnavailableError(GatewayError):
    """A dependency the configuration requires is down (e.g. Redis with `fail_closed`)."""

    status = 503
    type = "server_error"
    default_code = "service_unavailable"


class InternalError(GatewayError):
    status = 500
    type = "server_error"
    default_code = "internal_error"
