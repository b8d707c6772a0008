"""Virtual keys and audit records: the format, the hash, validation, and what may be shown."""

from __future__ import annotations

import dataclasses
import json
import secrets
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ai_gateway.security.audit import AuditRecord
from ai_gateway.security.keys import (
    ApiKey,
    format_key,
    hash_secret,
    issue_key,
    new_credentials,
    parse_key,
    verify_secret,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def key(**fields: Any) -> ApiKey:
    values: dict[str, Any] = {
        "id": "0123456789ab",
        "user": "alice",
        "salt": bytes(16),
        "secret_hash": bytes(32),
        "created_at": T0,
    }
    values.update(fields)
    return ApiKey(**values)


# --- format and parse ----------------------------------------------------------------------------


def test_a_new_key_has_the_documented_shape_and_parses_back() -> None:
    created, token = issue_key(user="alice")
    assert token.startswith("sk-gw-")
    assert parse_key(token) == (created.id, token.split("_", 1)[1])
    key_id, secret = token.removeprefix("sk-gw-").split("_", 1)
    assert len(key_id) == 12
    assert set(key_id) <= set("0123456789abcdef")
    assert len(secret) == 43
    assert created.verify(secret)


def test_ids_and_secrets_are_random() -> None:
    tokens = [issue_key(user="u")[1] for _ in range(50)]
    assert len({parse_key(t) for t in tokens}) == 50
    assert len({t[6:18] for t in tokens}) == 50


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sk-gw-",
        "sk-gw-0123456789ab",
        "sk-gw-0123456789ab_",
        "sk-gw-0123456789AB_" + "a" * 43,  # upper-case id
        "sk-gw-0123456789a_" + "a" * 44,  # id one short
        "sk-gw-0123456789ab_" + "a" * 42,  # secret one short
        "sk-gw-0123456789ab_" + "a" * 44,  # one long
        "sk-gw-0123456789ab_" + "a" * 42 + "=",  # not url-safe base64
        "sk-gw-0123456789ab_" + "a" * 42 + "+",
        " sk-gw-0123456789ab_" + "a" * 43,
        "sk-gw-0123456789ab_" + "a" * 43 + "\n",
        "Bearer sk-gw-0123456789ab_" + "a" * 43,
        "sk-gx-0123456789ab_" + "a" * 43,
        "sk-gw-0123456789ab-" + "a" * 43,
    ],
)
def test_parse_is_strict(text: str) -> None:
    assert parse_key(text) is None


def test_parse_refuses_what_is_not_a_string() -> None:
    assert parse_key(None) is None  # type: ignore[arg-type]
    assert parse_key(b"sk-gw-0123456789ab_" + b"a" * 43) is None  # type: ignore[arg-type]


@given(st.binary(min_size=32, max_size=32))
def test_every_generated_secret_round_trips(raw: bytes) -> None:
    import base64

    secret = base64.urlsafe_b64encode(raw).decode().rstrip("=")  # what token_urlsafe(32) makes
    assert parse_key(format_key("00000000abcd", secret)) == ("00000000abcd", secret)


# --- the hash ------------------------------------------------------------------------------------


def test_only_the_right_secret_verifies() -> None:
    credentials = new_credentials()
    _, secret = parse_key(credentials.token) or ("", "")
    assert verify_secret(secret, credentials.salt, credentials.secret_hash)
    tampered = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    assert not verify_secret(tampered, credentials.salt, credentials.secret_hash)
    assert not verify_secret(secret, bytes(16), credentials.secret_hash)  # another salt
    assert not verify_secret("", credentials.salt, credentials.secret_hash)


def test_the_hash_is_salted_sha256() -> None:
    salt, other = secrets.token_bytes(16), secrets.token_bytes(16)
    assert len(hash_secret("s", salt)) == 32
    assert hash_secret("same secret", salt) != hash_secret("same secret", other)
    import hashlib

    assert hash_secret("abc", salt) == hashlib.sha256(salt + b"abc").digest()


def test_rotation_credentials_keep_the_id_and_change_the_secret() -> None:
    first, second = new_credentials("0123456789ab"), new_credentials("0123456789ab")
    assert first.key_id == second.key_id == "0123456789ab"
    assert first.token != second.token
    with pytest.raises(ValueError, match="12 lowercase hex"):
        new_credentials("nope")


def test_credentials_and_keys_keep_the_secret_and_hash_out_of_repr() -> None:
    credentials = new_credentials()
    created, token = issue_key(user="alice")
    for text in (repr(credentials), repr(created), str(created)):
        assert "sk-gw-" not in text
        assert credentials.secret_hash.hex() not in text
        assert repr(created.secret_hash) not in text
        assert repr(created.salt) not in text
    assert token not in repr(created)


# --- the model -----------------------------------------------------------------------------------


def test_public_view_is_json_ready_and_has_no_salt_or_hash() -> None:
    created, token = issue_key(
        user="alice",
        team="core",
        name="ci",
        models=("fast", "smart"),
        rps=2,
        burst=5,
        tpm=10_000,
        max_concurrent=3,
        budget_usd=Decimal("12.50"),
        budget_period="month",
        guardrails=("pii",),
        expires_at=datetime.now(UTC) + timedelta(days=1),
        metadata={"env": "prod"},
    )
    view = created.public_view()
    text = json.dumps(view)  # JSON-ready as it is
    assert "salt" not in view
    assert "secret_hash" not in view
    assert created.salt.hex() not in text
    assert created.secret_hash.hex() not in text
    assert token.split("_", 1)[1] not in text
    assert view["budget_usd"] == "12.50"
    assert view["rps"] == 2.0
    assert view["models"] == ["fast", "smart"]
    assert view["status"] == "active"
    assert datetime.fromisoformat(view["created_at"]) == created.created_at
    assert view["expires_at"].endswith("+00:00")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"budget_usd": Decimal(5)}, "budget_period is required"),
        ({"budget_period": "day"}, "budget_usd is not"),
        ({"budget_usd": Decimal(-1), "budget_period": "day"}, "must not be negative"),
        ({"budget_usd": Decimal("NaN"), "budget_period": "day"}, "finite"),
        ({"budget_usd": 5.0, "budget_period": "day"}, "decimal"),
        ({"budget_usd": Decimal(5), "budget_period": "year"}, "budget_period must be one of"),
        ({"rps": 0}, "rps must be greater than 0"),
        ({"rps": -1.5}, "rps must be greater than 0"),
        ({"rps": float("nan")}, "rps must be greater than 0"),
        ({"rps": True}, "rps must be a number"),
        ({"rps": 1, "burst": 0}, "burst must be at least 1"),
        ({"burst": 3}, "burst needs rps"),
        ({"tpm": -5}, "tpm must be at least 1"),
        ({"max_concurrent": 0}, "max_concurrent must be at least 1"),
        ({"tpm": 1.5}, "tpm must be a whole number"),
        ({"user": ""}, "user must be a non-empty string"),
        ({"user": "   "}, "user must be a non-empty string"),
        ({"user": None}, "user is required"),
        ({"user": "x" * 257}, "longer than 256"),
        ({"team": ""}, "team must be a non-empty string"),
        ({"name": "a\x00b"}, "NUL"),
        ({"id": "0123456789AB"}, "12 lowercase hex"),
        ({"models": "fast"}, "models must be a list"),
        ({"models": ("fast", "")}, "models entries must be a non-empty string"),
        ({"guardrails": (1,)}, "guardrails entries"),
        ({"metadata": {"env": 1}}, r"metadata\['env'\] must be a string, got int"),
        ({"metadata": {"env": "x" * 513}}, "longer than 512"),
        ({"metadata": {"": "x"}}, "metadata keys"),
        ({"metadata": {f"k{i}": "v" for i in range(33)}}, "more than 32 entries"),
        ({"metadata": {"note": "sk-proj-abcdefghijkl"}}, "looks like a credential"),
        ({"metadata": ["env=prod"]}, "metadata must be a mapping"),
        ({"created_at": datetime(2025, 3, 1)}, "created_at must be a timezone-aware"),
        ({"expires_at": T0 - timedelta(seconds=1)}, "expires_at must be later"),
        ({"revoked_at": datetime(2025, 3, 1)}, "revoked_at must be a timezone-aware"),
        ({"salt": bytes(8)}, "salt must be 16 bytes"),
        ({"secret_hash": "00" * 32}, "secret_hash must be 32 bytes"),
    ],
)
def test_invalid_settings_are_refused_with_a_clear_message(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        key(**fields)


def test_values_are_normalised() -> None:
    plus_two = timezone(timedelta(hours=2))
    normalised = key(
        models=["a", "b", "a"],
        rps=3,
        created_at=datetime(2025, 3, 1, 14, 0, tzinfo=plus_two),
    )
    assert normalised.models == ("a", "b")
    assert isinstance(normalised.rps, float)
    assert normalised.created_at == T0
    assert normalised.created_at.tzinfo is UTC
    with pytest.raises(ValueError, match="burst needs rps"):
        dataclasses.replace(normalised, rps=None, burst=2)  # replace() validates again


def test_status_active_expired_revoked() -> None:
    expiring = key(expires_at=T0 + timedelta(hours=1))
    assert expiring.active(T0 + timedelta(minutes=59))
    assert expiring.status(T0 + timedelta(hours=1)) == "expired"
    assert not expiring.active(T0 + timedelta(hours=2))
    revoked = key(revoked_at=T0 + timedelta(minutes=1))
    assert revoked.status(T0) == "revoked"  # revoked is revoked, whenever it is asked
    assert not revoked.active(T0 + timedelta(days=1))
    assert key().active(T0 + timedelta(days=3650))


def test_allowed_models() -> None:
    assert key().allows_model("anything")
    limited = key(models=("fast", "smart"))
    assert limited.allows_model("fast")
    assert not limited.allows_model("slow")
    assert not limited.allows_model("Fast")


# --- audit records -------------------------------------------------------------------------------


def test_audit_record_defaults_and_json_shape() -> None:
    record = AuditRecord(actor="cli", action="key.created", target="0123456789ab")
    assert len(record.id) == 32
    assert record.created_at.tzinfo is UTC
    assert record.outcome == "success"
    data = record.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["created_at"] == record.created_at.isoformat()
    assert AuditRecord(actor="cli", action="key.created").id != record.id


def test_audit_records_never_hold_a_credential() -> None:
    _, token = issue_key(user="alice")
    record = AuditRecord(
        actor="anonymous",
        action="auth.failed",
        outcome="failure",
        target=token,
        details={
            "presented": token,
            "header": "Bearer abcdefghijklmnop",
            "provider_key": "sk-ant-api03-abcdefghijkl",
            "note": f"a key {token} in a sentence",
            "status": 401,
            "ratio": 0.5,
            "retry": False,
            "none": None,
        },
    )
    text = json.dumps(record.to_dict())
    assert "sk-" not in text
    assert "abcdefghijklmnop" not in text
    assert token.split("_", 1)[1] not in text
    assert record.details["note"] == "a key [redacted] in a sentence"
    assert record.details["status"] == 401
    assert record.details["retry"] is False


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"actor": ""}, "actor must be a non-empty string"),
        ({"action": "Key Created"}, "action must be a dotted lower-case name"),
        ({"action": "created"}, "action must be a dotted lower-case name"),
        ({"outcome": "ok"}, "outcome must be one of"),
        ({"details": {"nested": {"a": 1}}}, "must be a string, number, boolean or null"),
        ({"details": {"n": float("inf")}}, "finite"),
        ({"details": {f"k{i}": i for i in range(33)}}, "more than 32"),
        ({"details": {"sk-proj-abcdefghijkl": 1}}, "must not look like credentials"),
        ({"id": "not-a-uuid"}, "uuid4"),
        ({"created_at": datetime(2025, 3, 1)}, "timezone-aware"),
    ],
)
def test_invalid_audit_records_are_refused(fields: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"actor": "cli", "action": "key.created", **fields}
    with pytest.raises(ValueError, match=message):
        AuditRecord(**values)


def test_audit_text_is_bounded_and_storable() -> None:
    record = AuditRecord(
        actor="jwt:bob", action="content.blocked", details={"text": "x" * 5000, "nul": "a\x00b"}
    )
    assert len(str(record.details["text"])) == 1024
    assert record.details["nul"] == "a\ufffdb"  # PostgreSQL refuses NUL in text and jsonb
