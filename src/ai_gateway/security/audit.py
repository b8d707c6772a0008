"""The audit log's record: who did what to which target, with what outcome.

Records are append-only (the stores never update or delete them, and retention does not apply).
A record never holds a secret: text that looks like a credential (a gateway key, any `sk-` key,
a `Bearer` token, a JWT; see `ai_gateway.redaction.scrub`) is replaced by "[redacted]" in the
target and the details when the record is built, so a careless caller cannot leak one.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from ai_gateway.redaction import scrub

Outcome = Literal["success", "failure", "denied", "blocked"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
DetailValue = str | int | float | bool | None

MAX_DETAILS = 32
MAX_DETAIL_TEXT = 1024  # longer detail strings are cut, never rejected
MAX_FIELD = 256  # actor, action, target, source_ip, request_id

# Actions the gateway writes; other dotted lower-case names are accepted too.
KEY_CREATED = "key.created"
KEY_REVOKED = "key.revoked"
KEY_ROTATED = "key.rotated"
KEY_UPDATED = "key.updated"
AUTH_FAILED = "auth.failed"
ACCESS_DENIED = "access.denied"
CONTENT_BLOCKED = "content.blocked"
CONTENT_FLAGGED = "content.flagged"
CONFIG_RELOADED = "config.reloaded"

_ACTION = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+")


def key_actor(key_id: str) -> str:
    return f"key:{key_id}"


def jwt_actor(user: str) -> str:
    return f"jwt:{user}"


def _clean(text: str) -> str:
    """Credentials redacted; NUL (which PostgreSQL's text and jsonb refuse) replaced."""
    return scrub(text).replace("\x00", "\ufffd")


def _field(name: str, value: str | None, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise ValueError(f"{name} is required")
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return _clean(value[:MAX_FIELD])


def _detail(key: str, value: Any) -> DetailValue:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"details[{key!r}] must be a finite number")
        return value
    if isinstance(value, str):
        return _clean(value[:MAX_DETAIL_TEXT])
    raise ValueError(
        f"details[{key!r}] must be a string, number, boolean or null, got {type(value).__name__}"
    )


def _details(values: Any) -> dict[str, DetailValue]:
    if not isinstance(values, dict):
        raise ValueError("details must be a mapping")
    if len(values) > MAX_DETAILS:
        raise ValueError(f"details has more than {MAX_DETAILS} entries")
    clean: dict[str, DetailValue] = {}
    for key, value in values.items():
        if not isinstance(key, str) or not key or len(key) > 64 or "\x00" in key:
            raise ValueError("details keys must be strings of 1 to 64 characters, without NUL")
        if scrub(key) != key:
            raise ValueError("details keys must not look like credentials")
        clean[key] = _detail(key, value)
    return clean


def _new_id() -> str:
    return uuid.uuid4().hex


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditRecord:
    """One audited event. `actor`: "master", "cli", "anonymous", "key:<id>", "jwt:<user>";
    `action`: a dotted name such as "key.created" or "auth.failed"; `target`: what it acted on
    (a key id), if anything. `id` (a uuid4 hex) makes a retried write idempotent."""

    actor: str
    action: str
    outcome: Outcome = "success"
    target: str | None = None
    source_ip: str | None = None
    request_id: str | None = None
    details: dict[str, DetailValue] = field(default_factory=dict, hash=False)
    id: str = field(default_factory=_new_id)
    created_at: datetime = field(default_factory=_now)

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        if not isinstance(self.id, str) or not re.fullmatch(r"[0-9a-f]{32}", self.id):
            raise ValueError("id must be 32 lowercase hex characters (uuid4().hex)")
        put("actor", _field("actor", self.actor, required=True))
        if not isinstance(self.action, str) or not _ACTION.fullmatch(self.action):
            raise ValueError(f"action must be a dotted lower-case name, got {self.action!r}")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {self.outcome!r}")
        for name in ("target", "source_ip", "request_id"):
            put(name, _field(name, getattr(self, name)))
        put("details", _details(self.details))
        if not isinstance(self.created_at, datetime) or self.created_at.tzinfo is None:
            raise ValueError("created_at must be a timezone-aware datetime")
        put("created_at", self.created_at.astimezone(UTC))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the shape `SecurityStore.audit` returns)."""
        return {
            "id": self.id,
            "created_at": self.created_at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "source_ip": self.source_ip,
            "request_id": self.request_id,
            "details": dict(self.details),
        }
