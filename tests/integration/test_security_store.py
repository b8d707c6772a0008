"""Both security store backends on real databases: SQLite files in a temporary directory, and
PostgreSQL in a throwaway database (each test in its own schema), dropped at the end."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from structlog.testing import capture_logs

from ai_gateway.security.audit import AuditRecord
from ai_gateway.security.keys import ApiKey, issue_key, new_credentials, parse_key
from ai_gateway.stores.analytics import StoreUnavailableError
from ai_gateway.stores.analytics_postgres import PostgresAnalyticsStore
from ai_gateway.stores.analytics_sqlite import SQLiteAnalyticsStore
from ai_gateway.stores.migrations import check
from ai_gateway.stores.migrations import postgres as pg_migrations
from ai_gateway.stores.migrations import sqlite as sqlite_migrations
from ai_gateway.stores.security import KeyExistsError, KeyRevokedError
from ai_gateway.stores.security_postgres import PostgresSecurityStore
from ai_gateway.stores.security_sqlite import SQLiteSecurityStore
from analytics_support import T0, throwaway_database
from analytics_support import usage_record as usage

pytestmark = pytest.mark.integration

Store = SQLiteSecurityStore | PostgresSecurityStore
HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    with throwaway_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:12]


def security_store(request: pytest.FixtureRequest, backend: str, tmp_path: Path, tag: str) -> Store:
    if backend == "sqlite":
        return SQLiteSecurityStore(tmp_path / f"{tag}.db")
    return PostgresSecurityStore(request.getfixturevalue("pg_database"), schema=f"t_{tag}")


def analytics_store(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path, tag: str
) -> SQLiteAnalyticsStore | PostgresAnalyticsStore:
    if backend == "sqlite":
        return SQLiteAnalyticsStore(tmp_path / f"{tag}.db")
    return PostgresAnalyticsStore(request.getfixturevalue("pg_database"), schema=f"t_{tag}")


@pytest.fixture
async def store(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path, tag: str
) -> AsyncIterator[Store]:
    started = security_store(request, backend, tmp_path, tag)
    await started.start()
    yield started
    await started.aclose()


def full_key() -> tuple[ApiKey, str]:
    return issue_key(
        user="alice",
        team="core",
        name="ci runner",
        models=("fast", "smart"),
        rps=2.5,
        burst=5,
        tpm=100_000,
        max_concurrent=4,
        budget_usd=Decimal("12.345678901"),
        budget_period="month",
        guardrails=("pii", "prompt-injection"),
        expires_at=T0 + timedelta(days=30),
        metadata={"env": "prod", "owner": "Zoë"},
        created_at=T0,
    )


def secret_of(token: str) -> str:
    parsed = parse_key(token)
    assert parsed is not None
    return parsed[1]


def audit(action: str, at: datetime, **fields: object) -> AuditRecord:
    return AuditRecord(actor="cli", action=action, created_at=at, **fields)  # type: ignore[arg-type]


# --- migrations ----------------------------------------------------------------------------------


def test_migration_2_is_there_in_both_dialects() -> None:
    check(sqlite_migrations.MIGRATIONS)
    check(pg_migrations.MIGRATIONS)
    for migrations in (sqlite_migrations.MIGRATIONS, pg_migrations.MIGRATIONS):
        assert migrations[1].version == 2
        assert migrations[1].name == "api keys and audit log"


async def test_one_migration_history_with_the_analytics_store(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path, tag: str
) -> None:
    security = security_store(request, backend, tmp_path, tag)
    with capture_logs() as logs:
        await security.start()
    assert [e["versions"] for e in logs if e["event"] == "security_schema_migrated"] == [
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    ]
    assert await security.schema_version() == security.latest_version() == 10
    analytics = analytics_store(request, backend, tmp_path, tag)
    with capture_logs() as logs:
        await analytics.start()  # finds the schema done, and works in it
        await analytics.write_usage([usage("r1")])
        assert await analytics.has_request("r1")
    assert not [e for e in logs if e["event"].endswith("_schema_migrated")]
    assert await analytics.schema_version() == 10
    await analytics.aclose()
    await security.aclose()


async def test_stores_opening_one_database_at_once_all_start(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path, tag: str
) -> None:
    security = [security_store(request, backend, tmp_path, tag) for _ in range(3)]
    analytics = [analytics_store(request, backend, tmp_path, tag) for _ in range(2)]
    stores = [*security, *analytics]
    with capture_logs() as logs:
        await asyncio.gather(*(s.start() for s in stores))
    migrated = [e for e in logs if e["event"].endswith("_schema_migrated")]
    assert [e["versions"] for e in migrated] == [list(range(1, 11))]  # applied once, by one
    created, _ = full_key()
    await security[0].create_key(created)
    for started in stores:
        assert await started.schema_version() == 10
    for other in security[1:]:
        assert await other.get_key(created.id) == created
    await asyncio.gather(*(s.aclose() for s in stores))


# --- keys ----------------------------------------------------------------------------------------


async def test_a_key_round_trips_exactly(store: Store) -> None:
    created, token = full_key()
    await store.create_key(created)
    loaded = await store.get_key(created.id)
    assert loaded == created
    assert loaded is not None
    assert loaded.budget_usd == Decimal("12.345678901")
    assert loaded.metadata == {"env": "prod", "owner": "Zoë"}
    assert loaded.models == ("fast", "smart")
    assert loaded.created_at.tzinfo is not None
    assert loaded.verify(secret_of(token))
    minimal, _ = issue_key(user="bob", created_at=T0)
    await store.create_key(minimal)
    assert await store.get_key(minimal.id) == minimal
    assert await store.get_key("ffffffffffff") is None


async def test_an_existing_id_is_refused(store: Store) -> None:
    created, _ = full_key()
    await store.create_key(created)
    with pytest.raises(KeyExistsError, match=created.id):
        await store.create_key(created)


async def test_list_filters_by_user_team_and_revocation(store: Store) -> None:
    a1, _ = issue_key(user="alice", team="core", created_at=T0)
    a2, _ = issue_key(user="alice", team="web", created_at=T0 + HOUR)
    b1, _ = issue_key(user="bob", team="core", created_at=T0 + 2 * HOUR)
    for key in (b1, a2, a1):
        await store.create_key(key)
    await store.revoke_key(a2.id, T0 + 3 * HOUR)

    async def ids(**filters: object) -> list[str]:
        return [k.id for k in await store.list_keys(**filters)]  # type: ignore[arg-type]

    assert await ids() == [a1.id, b1.id]  # oldest first, revoked left out
    assert await ids(include_revoked=True) == [a1.id, a2.id, b1.id]
    assert await ids(user="alice") == [a1.id]
    assert await ids(user="alice", include_revoked=True) == [a1.id, a2.id]
    assert await ids(team="core") == [a1.id, b1.id]
    assert await ids(user="bob", team="core") == [b1.id]
    assert await ids(user="carol") == []


async def test_revoking_is_idempotent_and_keeps_the_first_time(store: Store) -> None:
    created, _ = full_key()
    await store.create_key(created)
    revoked = await store.revoke_key(created.id, T0 + HOUR)
    assert revoked is not None
    assert revoked.revoked_at == T0 + HOUR
    assert not revoked.active(T0 + 2 * HOUR)
    again = await store.revoke_key(created.id, T0 + 5 * HOUR)
    assert again is not None
    assert again.revoked_at == T0 + HOUR
    stored = await store.get_key(created.id)
    assert stored is not None
    assert stored.revoked_at == T0 + HOUR
    assert stored.status(T0 + 2 * HOUR) == "revoked"
    assert await store.revoke_key("ffffffffffff", T0) is None


async def test_rotation_replaces_the_secret(store: Store) -> None:
    created, old_token = full_key()
    await store.create_key(created)
    new = new_credentials(created.id)
    rotated = await store.rotate_key(created.id, new.salt, new.secret_hash, T0 + HOUR)
    assert rotated is not None
    assert rotated.rotated_at == T0 + HOUR
    stored = await store.get_key(created.id)
    assert stored == rotated
    assert stored is not None
    assert stored.verify(secret_of(new.token))
    assert not stored.verify(secret_of(old_token))
    # Everything but the secret is kept.
    rotated_at = (T0 + HOUR).isoformat()
    assert stored.public_view(T0) == {**created.public_view(T0), "rotated_at": rotated_at}
    assert await store.rotate_key("ffffffffffff", new.salt, new.secret_hash, T0) is None


async def test_a_revoked_key_cannot_be_rotated(store: Store) -> None:
    created, token = full_key()
    await store.create_key(created)
    await store.revoke_key(created.id, T0 + HOUR)
    new = new_credentials(created.id)
    with pytest.raises(KeyRevokedError, match="revoked"):
        await store.rotate_key(created.id, new.salt, new.secret_hash, T0 + 2 * HOUR)
    stored = await store.get_key(created.id)
    assert stored is not None
    assert stored.verify(secret_of(token))  # unchanged
    assert stored.rotated_at is None


# --- the audit log -------------------------------------------------------------------------------


async def test_audit_is_queried_newest_first_within_the_window(store: Store) -> None:
    records = [
        audit("key.created", T0, target="aaaaaaaaaaaa"),
        audit("key.revoked", T0 + HOUR, target="aaaaaaaaaaaa"),
        audit("auth.failed", T0 + 2 * HOUR, outcome="failure", source_ip="10.0.0.1"),
        audit("key.created", T0 + 3 * HOUR, target="bbbbbbbbbbbb"),
        audit("key.created", T0 - HOUR),  # before the window
    ]
    await store.write_audit(records)
    end = T0 + 3 * HOUR  # excluded

    async def ids(**filters: Any) -> list[str]:
        return [row["id"] for row in await store.audit(start=T0, end=end, **filters)]

    assert await ids() == [records[2].id, records[1].id, records[0].id]
    assert (await store.audit(start=T0, end=end))[0] == records[2].to_dict()
    assert await ids(action="key.created") == [records[0].id]
    assert await ids(target="aaaaaaaaaaaa", limit=1) == [records[1].id]
    assert await ids(actor="master") == []
    assert len(await store.audit(start=T0 - 2 * HOUR, end=T0 + 4 * HOUR, actor="cli")) == 5
    with pytest.raises(ValueError, match="limit"):
        await store.audit(start=T0, end=end, limit=0)


async def test_audit_details_round_trip_and_a_retried_batch_is_stored_once(store: Store) -> None:
    details = {"text": 'Zoë\'s "quote"', "n": 3, "ratio": 0.25, "ok": True, "none": None}
    batch = [audit("key.updated", T0 + timedelta(seconds=i), details=details) for i in range(3)]
    await store.write_audit(batch)
    await store.write_audit(batch)  # retried after a lost acknowledgement
    await store.write_audit([*batch[1:], audit("key.updated", T0 + HOUR)])
    await store.write_audit([])
    rows = await store.audit(start=T0, end=T0 + 2 * HOUR)
    assert len(rows) == 4
    assert rows[-1]["details"] == details
    assert rows[-1]["created_at"] == T0.isoformat()


async def test_audit_rows_cannot_be_changed_or_deleted(
    store: Store, backend: str, tmp_path: Path, tag: str, request: pytest.FixtureRequest
) -> None:
    await store.write_audit([audit("key.created", T0)])
    if backend == "sqlite":
        conn = sqlite3.connect(tmp_path / f"{tag}.db")
        try:
            for sql in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"):
                with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                    conn.execute(sql)
        finally:
            conn.close()
    else:
        pg = await asyncpg.connect(request.getfixturevalue("pg_database"))
        try:
            for sql in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"):
                with pytest.raises(asyncpg.RaiseError, match="append-only"):
                    await pg.execute(sql.replace("audit_log", f"t_{tag}.audit_log"))
        finally:
            await pg.close()
    assert len(await store.audit(start=T0, end=T0 + HOUR)) == 1


async def test_analytics_retention_leaves_the_audit_log_alone(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path, tag: str, store: Store
) -> None:
    await store.write_audit([audit("key.created", T0)])
    analytics = analytics_store(request, backend, tmp_path, tag)
    await analytics.start()
    await analytics.write_usage([usage("old")])
    assert await analytics.purge(T0 + timedelta(days=365)) == 1
    await analytics.aclose()
    assert len(await store.audit(start=T0, end=T0 + HOUR)) == 1


# --- secrets and outages -------------------------------------------------------------------------


async def test_the_secret_is_never_stored(
    store: Store, backend: str, tmp_path: Path, tag: str, request: pytest.FixtureRequest
) -> None:
    created, token = full_key()
    await store.create_key(created)
    await store.write_audit([audit("key.created", T0, target=created.id)])
    secret = secret_of(token)
    if backend == "sqlite":
        await store.aclose()  # everything checkpointed into the file
        dump = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(tag))
        assert created.id.encode() in dump
        assert secret.encode() not in dump
        return
    pg = await asyncpg.connect(request.getfixturevalue("pg_database"))
    try:
        await pg.execute(f"SET search_path TO t_{tag}")
        tables = await pg.fetch(
            "SELECT row_to_json(k)::text FROM api_keys k "
            "UNION ALL SELECT row_to_json(a)::text FROM audit_log a"
        )
    finally:
        await pg.close()
    text = "".join(row[0] for row in tables)
    assert created.id in text
    assert secret not in text


async def test_an_unusable_sqlite_path_is_unavailable(tmp_path: Path) -> None:
    store = SQLiteSecurityStore(tmp_path / "missing" / "dir" / "a.db")
    with pytest.raises(StoreUnavailableError, match="SQLite security store"):
        await store.start()
    await store.aclose()
    with pytest.raises(StoreUnavailableError, match="closed"):
        await store.get_key("0123456789ab")


async def test_an_unreachable_postgres_is_unavailable_without_its_password() -> None:
    store = PostgresSecurityStore(
        "postgresql://gateway:hunter2-secret@127.0.0.1:9/db", connect_timeout_s=2
    )
    with pytest.raises(StoreUnavailableError) as caught:
        await store.start()
    assert "PostgreSQL security store unavailable" in str(caught.value)
    assert "hunter2-secret" not in str(caught.value)
    with pytest.raises(StoreUnavailableError):  # later calls try again, and fail the same way
        await store.get_key("0123456789ab")
    await store.aclose()
