"""Virtual API keys: their format, their secrets, and the `ApiKey` model the stores keep.

A key is `sk-gw-<id>_<secret>`: `id` is 12 random lowercase hex characters (it names the key in
listings, logs and the audit log), `secret` is `secrets.token_urlsafe(32)` (43 characters, 256
random bits). Only a salted hash of the secret is stored: `SHA-256(salt || secret)` with a fresh
16-byte salt per key. A slow password KDF (bcrypt, scrypt, argon2) exists to make guessing
low-entropy passwords expensive; a 256-bit random secret cannot be guessed, so one fast hash is as
strong and keeps the check cheap on the request path. Comparison is constant-time
(`hmac.compare_digest`).

The secret is returned once, when a key is created or rotated (`issue_key`, `new_credentials`),
and is never stored or logged; `ApiKey` holds the salt and hash only, outside its `repr` and its
`public_view()`.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, TypedDict, Unpack, get_args

from ai_gateway.redaction import scrub
from ai_gateway.security.config import BudgetPeriod

KEY_PREFIX = "sk-gw-"
SALT_BYTES = 16
HASH_BYTES = 32  # SHA-256
SECRET_LENGTH = 43  # secrets.token_urlsafe(32)
MAX_NAME = 256  # user, team, name, model and guardrail names
MAX_METADATA_ENTRIES = 32
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512

KeyStatus = Literal["active", "expired", "revoked"]
BUDGET_PERIODS: tuple[BudgetPeriod, ...] = get_args(BudgetPeriod)

_KEY_ID = re.compile(r"[0-9a-f]{12}")
_TOKEN = re.compile(r"sk-gw-([0-9a-f]{12})_([A-Za-z0-9_-]{43})")


# --- the key format and its secret ---------------------------------------------------------------


def is_key_id(text: str) -> bool:
    return bool(_KEY_ID.fullmatch(text))


def format_key(key_id: str, secret: str) -> str:
    return f"{KEY_PREFIX}{key_id}_{secret}"


def parse_key(text: str) -> tuple[str, str] | None:
    """`(id, secret)` when `text` is exactly a gateway key, else None (no whitespace, no other
    prefix, no wrong lengths or alphabets)."""
    if not isinstance(text, str) or len(text) != len(KEY_PREFIX) + 12 + 1 + SECRET_LENGTH:
        return None
    match = _TOKEN.fullmatch(text)
    return (match[1], match[2]) if match else None


def hash_secret(secret: str, salt: bytes) -> bytes:
    """SHA-256(salt || secret): the value stored for a key (see the module's docstring)."""
    return hashlib.sha256(salt + secret.encode()).digest()


def verify_secret(secret: str, salt: bytes, secret_hash: bytes) -> bool:
    """Whether `secret` is the one whose salted hash is `secret_hash` (constant-time)."""
    return hmac.compare_digest(hash_secret(secret, salt), secret_hash)


@dataclass(frozen=True, slots=True)
class Credentials:
    """A freshly generated secret: `token` is shown to the user once; `salt` and `secret_hash`
    are stored."""

    key_id: str
    token: str = field(repr=False)
    salt: bytes = field(repr=False)
    secret_hash: bytes = field(repr=False)


def new_credentials(key_id: str | None = None) -> Credentials:
    """A new random secret for `key_id` (rotation), or for a new random id."""
    key_id = key_id if key_id is not None else secrets.token_hex(6)
    if not is_key_id(key_id):
        raise ValueError("a key id is 12 lowercase hex characters")
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(SALT_BYTES)
    return Credentials(key_id, format_key(key_id, secret), salt, hash_secret(secret, salt))


# --- the model -----------------------------------------------------------------------------------


def _utc(name: str, value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return value.astimezone(UTC)


def _text(name: str, value: str | None, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise ValueError(f"{name} is required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string")
    if len(value) > MAX_NAME:
        raise ValueError(f"{name} is longer than {MAX_NAME} characters")
    if "\x00" in value:
        raise ValueError(f"{name} must not contain NUL characters")
    return value


def _names(name: str, values: Any) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, tuple | list):
        raise ValueError(f"{name} must be a list of names")
    for value in values:
        _text(f"{name} entries", value)
    return tuple(dict.fromkeys(values))  # without repeats, in order


def _positive_int(name: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")


def _metadata(values: Any) -> dict[str, str]:
    if not isinstance(values, dict):
        raise ValueError("metadata must be a mapping of strings to strings")
    if len(values) > MAX_METADATA_ENTRIES:
        raise ValueError(f"metadata has more than {MAX_METADATA_ENTRIES} entries")
    for key, value in values.items():
        if not isinstance(key, str) or not key or len(key) > MAX_METADATA_KEY:
            raise ValueError(f"metadata keys must be strings of 1 to {MAX_METADATA_KEY} characters")
        if not isinstance(value, str):
            raise ValueError(f"metadata[{key!r}] must be a string, got {type(value).__name__}")
        if "\x00" in key + value:
            raise ValueError(f"metadata[{key!r}] must not contain NUL characters")
        if len(value) > MAX_METADATA_VALUE:
            raise ValueError(f"metadata[{key!r}] is longer than {MAX_METADATA_VALUE} characters")
        if scrub(value) != value:
            raise ValueError(
                f"metadata[{key!r}] looks like a credential; metadata is shown in key listings"
            )
    return dict(values)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


@dataclass(frozen=True, kw_only=True, slots=True)
class ApiKey:
    """A virtual key as stored (validated on construction: ValueError names the field).

    `models` empty: every model is allowed. Limits left None do not apply. `budget_usd` needs
    `budget_period`. `salt` and `secret_hash` are never part of `repr()` or `public_view()`."""

    id: str
    user: str
    salt: bytes = field(repr=False)
    secret_hash: bytes = field(repr=False)
    created_at: datetime
    name: str | None = None
    team: str | None = None
    models: tuple[str, ...] = ()
    rps: float | None = None
    burst: int | None = None
    tpm: int | None = None
    max_concurrent: int | None = None
    budget_usd: Decimal | None = None
    budget_period: BudgetPeriod | None = None
    guardrails: tuple[str, ...] = ()
    expires_at: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict, hash=False)
    revoked_at: datetime | None = None
    rotated_at: datetime | None = None

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        if not isinstance(self.id, str) or not is_key_id(self.id):
            raise ValueError("id must be 12 lowercase hex characters")
        _text("user", self.user, required=True)
        _text("name", self.name)
        _text("team", self.team)
        put("models", _names("models", self.models))
        put("guardrails", _names("guardrails", self.guardrails))
        self._check_limits()
        self._check_budget()
        put("metadata", _metadata(self.metadata))
        if not isinstance(self.salt, bytes) or len(self.salt) != SALT_BYTES:
            raise ValueError(f"salt must be {SALT_BYTES} bytes")
        if not isinstance(self.secret_hash, bytes) or len(self.secret_hash) != HASH_BYTES:
            raise ValueError(f"secret_hash must be {HASH_BYTES} bytes (SHA-256)")
        put("created_at", _utc("created_at", self.created_at))
        if self.created_at is None:
            raise ValueError("created_at is required")
        for name in ("expires_at", "revoked_at", "rotated_at"):
            put(name, _utc(name, getattr(self, name)))
        if self.expires_at is not None and self.expires_at <= self.created_at:
            raise ValueError("expires_at must be later than created_at")

    def _check_limits(self) -> None:
        if self.rps is not None:
            if isinstance(self.rps, bool) or not isinstance(self.rps, int | float):
                raise ValueError("rps must be a number")
            if not math.isfinite(self.rps) or self.rps <= 0:
                raise ValueError(f"rps must be greater than 0, got {self.rps}")
            object.__setattr__(self, "rps", float(self.rps))
        for name in ("burst", "tpm", "max_concurrent"):
            _positive_int(name, getattr(self, name))
        if self.burst is not None and self.rps is None:
            raise ValueError("burst needs rps (it is the size of the rps limit's bucket)")

    def _check_budget(self) -> None:
        budget, period = self.budget_usd, self.budget_period
        if budget is not None:
            if not isinstance(budget, Decimal) or not budget.is_finite():
                raise ValueError("budget_usd must be a finite decimal number")
            if budget < 0:
                raise ValueError(f"budget_usd must not be negative, got {budget}")
            if period is None:
                raise ValueError(f"budget_period is required with budget_usd: {BUDGET_PERIODS}")
        elif period is not None:
            raise ValueError("budget_period is set but budget_usd is not")
        if period is not None and period not in BUDGET_PERIODS:
            raise ValueError(f"budget_period must be one of {BUDGET_PERIODS}, got {period!r}")

    def status(self, now: datetime) -> KeyStatus:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"

    def active(self, now: datetime) -> bool:
        """Not revoked and not expired at `now`."""
        return self.status(now) == "active"

    def allows_model(self, name: str) -> bool:
        """Whether requests for model `name` may use this key (exact names; none listed: all)."""
        return not self.models or name in self.models

    def verify(self, secret: str) -> bool:
        """Whether `secret` (the part after `sk-gw-<id>_`) is this key's current secret."""
        return verify_secret(secret, self.salt, self.secret_hash)

    def public_view(self, now: datetime | None = None) -> dict[str, Any]:
        """Everything but the salt and hash, JSON-ready: decimals as strings, ISO-8601 times, and
        `status` at `now` (default: the current time)."""
        return {
            "id": self.id,
            "name": self.name,
            "user": self.user,
            "team": self.team,
            "status": self.status(now or datetime.now(UTC)),
            "models": list(self.models),
            "rps": self.rps,
            "burst": self.burst,
            "tpm": self.tpm,
            "max_concurrent": self.max_concurrent,
            "budget_usd": None if self.budget_usd is None else format(self.budget_usd, "f"),
            "budget_period": self.budget_period,
            "guardrails": list(self.guardrails),
            "expires_at": _iso(self.expires_at),
            "metadata": dict(self.metadata),
            "created_at": _iso(self.created_at),
            "revoked_at": _iso(self.revoked_at),
            "rotated_at": _iso(self.rotated_at),
        }


class KeyOptions(TypedDict, total=False):
    """The optional settings of a new key (`ApiKey`'s fields of the same names)."""

    name: str | None
    team: str | None
    models: tuple[str, ...]
    rps: float | None
    burst: int | None
    tpm: int | None
    max_concurrent: int | None
    budget_usd: Decimal | None
    budget_period: BudgetPeriod | None
    guardrails: tuple[str, ...]
    expires_at: datetime | None
    metadata: dict[str, str]


def issue_key(
    *, user: str, created_at: datetime | None = None, **options: Unpack[KeyOptions]
) -> tuple[ApiKey, str]:
    """A new key with a new secret: `(key, token)`. Store the key; show `token` to the user once
    (it is the only copy). ValueError when a setting is invalid."""
    credentials = new_credentials()
    key = ApiKey(
        id=credentials.key_id,
        user=user,
        salt=credentials.salt,
        secret_hash=credentials.secret_hash,
        created_at=created_at if created_at is not None else datetime.now(UTC),
        **options,
    )
    return key, credentials.token


def issued_view(key: ApiKey, token: str) -> dict[str, Any]:
    """What creating or rotating a key answers (admin API and `keys --json` alike): the secret
    as `key` (its only appearance) and the key's public view."""
    return {"object": "api_key", "key": token, **key.public_view()}
