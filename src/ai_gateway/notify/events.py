"""The events the gateway notifies about: one `Event` shape, built only by the typed
constructors below, each with a stable JSON payload (docs/notifications.md lists them).

`dedupe` names one occurrence fleet-wide: instances that see the same occurrence build the same
string, and the first one to claim it (notify/dedupe.py) delivers it. `ttl_s` is how long the
claim must at least last for the occurrence to stay one (a budget threshold: its period).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

PAYLOAD_VERSION = 1


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    subject: str  # what the event is about, e.g. "key:k1", "deployment:fast/0"
    data: dict[str, Any]  # JSON values only
    text: str  # one line for people (Slack, the mail's subject)
    dedupe: str  # the occurrence, e.g. "budget.threshold:key:k1:80:day:20250101"
    ttl_s: float = 0.0
    id: str = field(default_factory=lambda: "evt_" + os.urandom(12).hex())
    created_at: datetime = field(default_factory=_now)

    def payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.kind,
            "version": PAYLOAD_VERSION,
            "created_at": _iso(self.created_at),
            "subject": self.subject,
            "text": self.text,
            "data": self.data,
        }

    def body(self) -> bytes:
        """The payload as the bytes a webhook receives (and its signature covers)."""
        return orjson.dumps(self.payload())


def budget_threshold(
    *,
    scope: str,
    name: str,
    percent: int,
    budget_usd: Decimal,
    spent_usd: Decimal,
    period: str,
    period_start: datetime,
    period_end: datetime | None,
) -> Event:
    """The spend of a key's, user's or team's budget reached `percent` % in this period."""
    subject = f"{scope}:{name}"
    # Once per threshold and period: the claim outlives the period (a "total" budget: a year).
    ttl = (period_end - _now()).total_seconds() + 86400 if period_end else 365 * 86400.0
    return Event(
        kind="budget.threshold",
        subject=subject,
        data={
            "scope": scope,
            "name": name,
            "threshold_percent": percent,
            "budget_usd": str(budget_usd),
            "spent_usd": f"{spent_usd.normalize():f}",
            "period": period,
            "period_start": _iso(period_start),
        },
        text=(
            f"Budget: {scope} {name} has spent {percent}% of its {budget_usd} USD "
            f"{'in total' if period == 'total' else 'per ' + period} "
            f"({spent_usd.normalize():f} USD)."
        ),
        dedupe=f"budget.threshold:{subject}:{percent}:{period}:{period_start:%Y%m%d}",
        ttl_s=max(ttl, 60.0),
    )


def ratelimit_exceeded(
    *, scope: str, name: str, limit: str, refusals: int, window_s: float
) -> Event:
    """`refusals` requests of one subject were refused by its `limit` within `window_s`."""
    subject = f"{scope}:{name}"
    return Event(
        kind="ratelimit.exceeded",
        subject=subject,
        data={
            "scope": scope,
            "name": name,
            "limit": limit,
            "refusals": refusals,
            "window_s": window_s,
        },
        text=(
            f"Rate limit: {scope} {name} had {refusals} requests refused ({limit}) "
            f"within {window_s:g} s."
        ),
        dedupe=f"ratelimit.exceeded:{subject}",
    )


def errors_spike(
    *, deployment: str, model: str, provider: str, window_s: float, requests: int, errors: int
) -> Event:
    rate = errors / requests if requests else 0.0
    return Event(
        kind="errors.spike",
        subject=f"deployment:{deployment}",
        data={
            "deployment": deployment,
            "model": model,
            "provider": provider,
            "window_s": window_s,
            "requests": requests,
            "errors": errors,
            "error_rate": round(rate, 4),
        },
        text=(
            f"Errors: deployment {deployment} ({provider}) failed {errors} of {requests} "
            f"attempts ({rate:.0%}) within {window_s:g} s."
        ),
        dedupe=f"errors.spike:deployment:{deployment}",
    )


def latency_slo(
    *,
    deployment: str,
    model: str,
    provider: str,
    window_s: float,
    requests: int,
    slow: int,
    p95_ms: float,
) -> Event:
    share = slow / requests if requests else 0.0
    return Event(
        kind="latency.slo",
        subject=f"deployment:{deployment}",
        data={
            "deployment": deployment,
            "model": model,
            "provider": provider,
            "window_s": window_s,
            "requests": requests,
            "over_threshold": slow,
            "share_over_threshold": round(share, 4),
            "p95_threshold_ms": p95_ms,
        },
        text=(
            f"Latency: deployment {deployment} ({provider}) p95 is over {p95_ms:g} ms: {slow} "
            f"of {requests} attempts ({share:.0%}) were slower within {window_s:g} s."
        ),
        dedupe=f"latency.slo:deployment:{deployment}",
    )


def circuit_changed(*, deployment: str, opened: bool) -> Event:
    kind = "circuit.opened" if opened else "circuit.closed"
    state = "opened" if opened else "closed"
    return Event(
        kind=kind,
        subject=f"deployment:{deployment}",
        data={"deployment": deployment, "state": "open" if opened else "closed"},
        text=f"Circuit {state} for deployment {deployment}.",
        dedupe=f"{kind}:deployment:{deployment}",
        ttl_s=5.0,  # the instances mirroring one trip report it within moments of each other
    )


def key_expiring(
    *, key_id: str, user: str, team: str | None, name: str | None, expires_at: datetime
) -> Event:
    left = (expires_at - _now()).total_seconds()
    return Event(
        kind="key.expiring",
        subject=f"key:{key_id}",
        data={
            "key_id": key_id,
            "user": user,
            "team": team,
            "name": name,
            "expires_at": _iso(expires_at),
            "days_left": round(left / 86400, 2),
        },
        text=f"Key {key_id} of user {user} expires at {_iso(expires_at)}.",
        dedupe=f"key.expiring:key:{key_id}:{_iso(expires_at)}",
        ttl_s=max(left, 0.0) + 86400,
    )


def sample_event(message: str) -> Event:
    """What POST /admin/notifications/test sends (never deduplicated)."""
    return Event(
        kind="test",
        subject="gateway",
        data={"message": message},
        text=f"Test notification from the AI gateway: {message}",
        dedupe="test",
    )
