"""Why a context source was left out: short, fixed reason codes (they go into the
`x-gateway-context` response header and the logs), and the one exception the clients raise."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    OK = "ok"
    TIMEOUT = "timeout"  # its own timeout or the overall budget ran out
    UNAVAILABLE = "unavailable"  # no connection, connection lost, 429 or 5xx
    BAD_RESPONSE = "bad_response"  # not JSON, not the contract's shape, too large
    UNAUTHORIZED = "unauthorized"  # 401: the gateway's service token was refused
    REJECTED = "rejected"  # another 4xx: the service refused the gateway's request
    FORBIDDEN = "forbidden"  # 403: this user may not see this (the service is healthy)
    NOT_FOUND = "not_found"  # 404: no such user or project (the service is healthy)
    CIRCUIT_OPEN = "circuit_open"  # skipped: the source failed too often lately


# Answers that say nothing bad about the service: they do not count towards its breaker.
HEALTHY = frozenset({Reason.OK, Reason.FORBIDDEN, Reason.NOT_FOUND})


class SourceError(Exception):
    """A call to a service that gave nothing usable. `detail` is for the operator's logs: a
    status code, an exception class or a field path; never a URL, a body or a token."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail


def reason_for_status(status: int) -> Reason:
    """The reason for a non-2xx HTTP status."""
    if status == 401:
        return Reason.UNAUTHORIZED
    if status == 403:
        return Reason.FORBIDDEN
    if status == 404:
        return Reason.NOT_FOUND
    if status == 429 or status >= 500:
        return Reason.UNAVAILABLE
    if 400 <= status < 500:
        return Reason.REJECTED
    return Reason.BAD_RESPONSE  # 1xx/3xx: not part of the contract
