"""What admission holds and says: a scope's limits ready to check (`Limits`), what a request
holds until it is settled (`Ticket`), and the refusals' messages and headers. Shared by the
in-process path and the one-round-trip Redis path of `security/admission.py`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ai_gateway.errors import RateLimitError, ServiceUnavailableError
from ai_gateway.security.budget_gate import Budget, Reserved
from ai_gateway.security.config import LimitConfig, default_burst
from ai_gateway.security.ratelimit import Decision, Rate


@dataclass(frozen=True, slots=True)
class Limits:
    """One scope's limits, ready to check (the Rate built once)."""

    scope: str  # "key", "user", "team", "model"
    key: str  # the limiter's key, e.g. "user:alice"
    rate: Rate | None
    tpm: int | None
    max_concurrent: int | None


@dataclass(slots=True)
class Ticket:
    """What a request holds until it is settled."""

    leases: list[tuple[str, str]] = field(default_factory=list)  # (limiter key, lease id) held
    token_scopes: list[tuple[str, int]] = field(default_factory=list)  # (key, tpm)
    budgets: list[Budget] = field(default_factory=list)
    reserved: Reserved = field(default_factory=list)  # given back at settle
    headers: dict[str, str] = field(default_factory=dict)
    settled: bool = False


def rate_of(limits: LimitConfig) -> Rate | None:
    if limits.rps is None:
        return None
    return Rate(limits.rps, limits.burst or default_burst(limits.rps))


def reset_header(seconds: float) -> str:
    return f"{max(seconds, 0.0):.3f}".rstrip("0").rstrip(".") + "s"


def limiter_unavailable() -> ServiceUnavailableError:
    return ServiceUnavailableError(
        "Rate limits cannot be checked: the shared limiter (Redis) is unreachable and "
        "the gateway is configured to fail closed. Retry shortly."
    )


def refusal_headers(decision: Decision, kind: str) -> dict[str, str]:
    suffix = "tokens" if kind == "tpm" else "requests"
    return {
        "retry-after": str(max(1, math.ceil(decision.retry_after_s))),
        f"x-ratelimit-limit-{suffix}": str(decision.limit),
        f"x-ratelimit-remaining-{suffix}": str(decision.remaining),
        f"x-ratelimit-reset-{suffix}": reset_header(decision.reset_s),
    }


def refusal(decision: Decision, kind: str, scoped: Limits) -> RateLimitError:
    """The 429 for `scoped`'s limit `kind` ("rps", "tpm", "concurrency") refusing."""
    what = {
        "rps": f"{scoped.rate.rps:g} requests per second" if scoped.rate else "",
        "tpm": f"{scoped.tpm} tokens per minute",
        "concurrency": f"{scoped.max_concurrent} concurrent requests",
    }[kind]
    who = f"this {scoped.scope}"
    if scoped.scope == "model":  # everyone's requests for it: say which one
        who = f"model {scoped.key.partition(':')[2]!r}"
    return RateLimitError(
        f"Rate limit reached for {who}: {what}. "
        f"Retry after {max(1, math.ceil(decision.retry_after_s))} s.",
        headers=refusal_headers(decision, kind),
    )


def record(scoped: Limits, kind: str, decision: Decision, ticket: Ticket, lease_id: str) -> None:
    """What an admitting decision gives the ticket: the `x-ratelimit-*-requests` headers of the
    scope with the fewest requests left, a token bucket to charge, or a lease to release."""
    if kind == "rps":
        headers = ticket.headers
        if not headers or decision.remaining < int(headers["x-ratelimit-remaining-requests"]):
            ticket.headers = {
                "x-ratelimit-limit-requests": str(decision.limit),
                "x-ratelimit-remaining-requests": str(decision.remaining),
                "x-ratelimit-reset-requests": reset_header(decision.reset_s),
            }
    elif kind == "tpm":
        assert scoped.tpm is not None
        if (scoped.key, scoped.tpm) not in ticket.token_scopes:  # charged once
            ticket.token_scopes.append((scoped.key, scoped.tpm))
    else:
        ticket.leases.append((scoped.key, lease_id))
