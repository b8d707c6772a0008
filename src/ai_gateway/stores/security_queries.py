"""The SQL of the security store, and its rows, for both dialects (see migration 2).

Times and decimals are converted by the caller's functions (SQLite: INTEGER microseconds and TEXT
decimals; PostgreSQL: timestamptz and numeric). Lists and mappings are JSON text in both (jsonb in
PostgreSQL, which asyncpg reads and writes as text).
"""

# ruff: noqa: S608 -- SQL here is assembled from constants only; every value is a bind parameter.

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from ai_gateway.security.audit import AuditRecord
from ai_gateway.security.keys import ApiKey
from ai_gateway.stores.analytics_queries import Dialect

KEY_COLUMNS = (
    "id",
    "name",
    "user_id",
    "team",
    "models",
    "rps",
    "burst",
    "tpm",
    "max_concurrent",
    "budget_usd",
    "budget_period",
    "guardrails",
    "expires_at",
    "metadata",
    "salt",
    "secret_hash",
    "created_at",
    "revoked_at",
    "rotated_at",
)
AUDIT_COLUMNS = (
    "id",
    "created_at",
    "actor",
    "action",
    "target",
    "outcome",
    "source_ip",
    "request_id",
    "details",
)
_KEYS = ", ".join(KEY_COLUMNS)
_AUDIT = ", ".join(AUDIT_COLUMNS)

Filters = tuple[str, list[Any]]


def _params(d: Dialect, count: int, start: int = 1) -> str:
    return ", ".join(d.p(i) for i in range(start, start + count))


def _where(d: Dialect, conditions: Sequence[tuple[str, Any]], first: int = 1) -> Filters:
    """`column = $n` for each (column, value) whose value is not None, ANDed."""
    parts: list[str] = []
    params: list[Any] = []
    for column, value in conditions:
        if value is not None:
            params.append(value)
            parts.append(f"{column} = {d.p(first + len(params) - 1)}")
    return " AND ".join(parts), params


# --- keys ----------------------------------------------------------------------------------------


def insert_key_sql(d: Dialect) -> str:
    return (
        f"INSERT INTO api_keys ({_KEYS}) VALUES ({_params(d, len(KEY_COLUMNS))}) "
        "ON CONFLICT (id) DO NOTHING"
    )


def get_key_sql(d: Dialect, *, for_update: bool = False) -> str:
    lock = " FOR UPDATE" if for_update and d.name == "postgres" else ""
    return f"SELECT {_KEYS} FROM api_keys WHERE id = {d.p(1)}{lock}"


def list_keys_sql(
    d: Dialect, *, user: str | None, team: str | None, include_revoked: bool
) -> Filters:
    where, params = _where(d, [("user_id", user), ("team", team)])
    conditions = [c for c in (where, "" if include_revoked else "revoked_at IS NULL") if c]
    clause = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return f"SELECT {_KEYS} FROM api_keys{clause} ORDER BY created_at, id", params


def revoke_key_sql(d: Dialect) -> str:
    """$1 id, $2 time; a revoked key keeps its first revocation time."""
    return f"UPDATE api_keys SET revoked_at = COALESCE(revoked_at, {d.p(2)}) WHERE id = {d.p(1)}"


def rotate_key_sql(d: Dialect) -> str:
    """$1 id, $2 salt, $3 hash, $4 time; only a key that is not revoked."""
    return (
        f"UPDATE api_keys SET salt = {d.p(2)}, secret_hash = {d.p(3)}, rotated_at = {d.p(4)} "
        f"WHERE id = {d.p(1)} AND revoked_at IS NULL"
    )


def key_values(
    key: ApiKey, when: Callable[[datetime], Any], money: Callable[[Decimal], Any]
) -> tuple[Any, ...]:
    """A key as a row in KEY_COLUMNS order."""

    def at(moment: datetime | None) -> Any:
        return None if moment is None else when(moment)

    return (
        key.id,
        key.name,
        key.user,
        key.team,
        json.dumps(list(key.models), ensure_ascii=False),
        key.rps,
        key.burst,
        key.tpm,
        key.max_concurrent,
        None if key.budget_usd is None else money(key.budget_usd),
        key.budget_period,
        json.dumps(list(key.guardrails), ensure_ascii=False),
        at(key.expires_at),
        json.dumps(key.metadata, ensure_ascii=False),
        key.salt,
        key.secret_hash,
        when(key.created_at),
        at(key.revoked_at),
        at(key.rotated_at),
    )


def key_from_row(row: Sequence[Any], when: Callable[[Any], datetime]) -> ApiKey:
    """A row of KEY_COLUMNS as the model."""
    values = dict(zip(KEY_COLUMNS, row, strict=True))

    def at(name: str) -> datetime | None:
        value = values[name]
        return None if value is None else when(value)

    budget = values["budget_usd"]
    return ApiKey(
        id=values["id"],
        name=values["name"],
        user=values["user_id"],
        team=values["team"],
        models=tuple(json.loads(values["models"])),
        rps=values["rps"],
        burst=values["burst"],
        tpm=values["tpm"],
        max_concurrent=values["max_concurrent"],
        budget_usd=None if budget is None else Decimal(str(budget)),
        budget_period=values["budget_period"],
        guardrails=tuple(json.loads(values["guardrails"])),
        expires_at=at("expires_at"),
        metadata=json.loads(values["metadata"]),
        salt=bytes(values["salt"]),
        secret_hash=bytes(values["secret_hash"]),
        created_at=when(values["created_at"]),
        revoked_at=at("revoked_at"),
        rotated_at=at("rotated_at"),
    )


# --- the audit log -------------------------------------------------------------------------------


def insert_audit_sql(d: Dialect) -> str:
    return (
        f"INSERT INTO audit_log ({_AUDIT}) VALUES ({_params(d, len(AUDIT_COLUMNS))}) "
        "ON CONFLICT (id) DO NOTHING"
    )


def audit_sql(d: Dialect, *, action: str | None, actor: str | None, target: str | None) -> Filters:
    """$1 start (inclusive), $2 end (exclusive), then the filters given, then the limit."""
    where, params = _where(d, [("action", action), ("actor", actor), ("target", target)], 3)
    extra = f" AND {where}" if where else ""
    limit = d.p(3 + len(params))
    sql = (
        f"SELECT {_AUDIT} FROM audit_log "
        f"WHERE created_at >= {d.p(1)} AND created_at < {d.p(2)}{extra} "
        f"ORDER BY created_at DESC, id DESC LIMIT {limit}"
    )
    return sql, params


def audit_values(record: AuditRecord, when: Callable[[datetime], Any]) -> tuple[Any, ...]:
    return (
        record.id,
        when(record.created_at),
        record.actor,
        record.action,
        record.target,
        record.outcome,
        record.source_ip,
        record.request_id,
        json.dumps(record.details, ensure_ascii=False),
    )


def audit_row(row: Sequence[Any], when: Callable[[Any], datetime]) -> dict[str, Any]:
    values = dict(zip(AUDIT_COLUMNS, row, strict=True))
    values["created_at"] = when(values["created_at"]).isoformat()
    values["details"] = json.loads(values["details"])
    return values
