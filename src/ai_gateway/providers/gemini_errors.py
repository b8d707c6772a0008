"""Gemini's error bodies mapped onto the gateway's error tree.

Google answers with ``{"error": {"code", "message", "status", "details"}}`` (``google.rpc.Status``
as JSON). Most errors go through the shared status table (`upstream_error`); three Gemini
peculiarities are handled here first:

- A rejected API key arrives as HTTP 400 ``INVALID_ARGUMENT`` with an ``ErrorInfo`` detail whose
  reason is ``API_KEY_INVALID`` (or another ``API_KEY_*`` reason). That is the gateway's
  configuration, not the client's request: it becomes `UpstreamAuthError` (502), like 401/403.
- HTTP 400 ``FAILED_PRECONDITION`` means the project cannot use the API (billing not enabled,
  region not served): also the operator's to fix, so 502, never a 400 blaming the client.
- A 429 carries its wait as a ``google.rpc.RetryInfo`` detail (``"retryDelay": "7s"``); it becomes
  the Retry-After header when the response had none.

The same mapping serves in-stream ``{"error": {...}}`` events, whose ``code`` stands in for the
HTTP status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ai_gateway.errors import GatewayError, UpstreamAuthError, UpstreamError
from ai_gateway.providers.errors import upstream_error
from ai_gateway.providers.http import retry_after_seconds
from ai_gateway.redaction import scrub
from ai_gateway.routing.deployments import Deployment

_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"

# google.rpc.Code names -> the HTTP status Google's JSON/HTTP mapping uses for them.
_HTTP_FOR_STATUS = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ABORTED": 409,
    "ALREADY_EXISTS": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INTERNAL": 500,
    "DATA_LOSS": 500,
    "NOT_IMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}


def parse_error_body(body: bytes) -> Mapping[str, Any] | str | None:
    """The ``error`` object of a Gemini error body, the body's text if it is not JSON, or None."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", errors="replace").strip()
        return text[:500] or None
    if isinstance(data, list) and data:  # the JSON-array stream form wraps errors in a list
        data = data[0]
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            return error
        if isinstance(error, str):
            return error
    return None


def retry_delay_seconds(details: object) -> float | None:
    """Seconds from a ``google.rpc.RetryInfo`` detail (a Duration such as ``"7s"``/``"1.5s"``)."""
    for detail in details if isinstance(details, list) else []:
        if not isinstance(detail, dict) or detail.get("@type") != _RETRY_INFO:
            continue
        delay = detail.get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return max(0.0, float(delay[:-1]))
            except ValueError:
                return None
        if isinstance(delay, dict):  # a Duration written as an object
            seconds, nanos = delay.get("seconds", 0), delay.get("nanos", 0)
            if isinstance(seconds, int | str) and isinstance(nanos, int):
                try:
                    return max(0.0, int(seconds) + nanos / 1e9)
                except ValueError:
                    return None
    return None


def key_rejection_reason(details: object) -> str | None:
    """The ``ErrorInfo`` reason when Google rejected the API key itself (``API_KEY_INVALID``...)."""
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and detail.get("@type") == _ERROR_INFO:
            reason = detail.get("reason")
            if isinstance(reason, str) and reason.startswith("API_KEY_"):
                return reason
    return None


def error_from_payload(
    deployment: Deployment,
    status: int | None,
    error: Mapping[str, Any] | str | None,
    headers: Mapping[str, str],
) -> GatewayError:
    """Map one Gemini error (an HTTP error body's ``error`` object, or an in-stream one)."""
    if not isinstance(error, Mapping):
        return upstream_error(deployment, status or 500, error, headers)
    code, rpc_status = error.get("code"), error.get("status")
    rpc_status = rpc_status if isinstance(rpc_status, str) else None
    if status is None:
        status = code if isinstance(code, int) and 400 <= code <= 599 else None
    if status is None:
        status = _HTTP_FOR_STATUS.get(rpc_status or "", 500)
    raw_message = error.get("message")
    message = str(raw_message) if raw_message is not None else None
    details = error.get("details")
    where = f"{deployment.provider}, deployment '{deployment.id}'"
    reason = key_rejection_reason(details)
    if reason is not None:
        return UpstreamAuthError(
            f"The upstream provider ({where}) rejected the gateway's API key "
            f"(HTTP {status} {rpc_status or ''}, {reason}). The gateway's provider API key is "
            "missing, wrong or lacks access; an operator must fix the gateway's configuration."
        )
    if status == 400 and rpc_status == "FAILED_PRECONDITION":
        detail = scrub(message or "", (deployment.api_key,))[:2000]
        return UpstreamError(
            f"The upstream provider ({where}) refuses to serve this deployment (HTTP 400 "
            f"FAILED_PRECONDITION): {detail or 'no detail given'}. An operator must check the "
            "deployment's billing and region."
        )
    if status == 429 and retry_after_seconds(headers) is None:
        delay = retry_delay_seconds(details)
        if delay is not None:
            headers = {"retry-after": f"{delay:g}"}
    return upstream_error(deployment, status, message, headers)


def map_gemini_error(
    deployment: Deployment, status: int, body: bytes, headers: Mapping[str, str]
) -> GatewayError:
    """The `ErrorMapper` for `UpstreamHTTP`: a non-2xx Gemini response."""
    return error_from_payload(deployment, status, parse_error_body(body), headers)
