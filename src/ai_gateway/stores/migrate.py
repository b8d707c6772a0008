"""`ai-gateway migrate`, and the check `serve` makes when it does not migrate itself
(`database_migrate_at_start: false`): the database the settings name (PostgreSQL with
`database_url` / DATABASE_URL, else the SQLite file under `data_dir`), its schema brought to
this gateway's version, or its missing versions listed.

Every store of a database shares one migration history (`stores/migrations/`), so one run
migrates them all. A lock makes concurrent runs (several gateways, a migration job) apply each
version once. Errors never repeat the URL or its password.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import asyncpg  # type: ignore[import-untyped]

from ai_gateway.redaction import scrub
from ai_gateway.settings import GatewaySettings
from ai_gateway.stores import migrations
from ai_gateway.stores.analytics import StoreUnavailableError
from ai_gateway.stores.factory import postgres_url, sqlite_path
from ai_gateway.stores.migrations import postgres as pg_migrations
from ai_gateway.stores.migrations import sqlite as sqlite_migrations

SCHEMA = "ai_gateway"  # the stores' schema (the factory gives them no other)


@dataclass(frozen=True, slots=True)
class SchemaState:
    backend: str  # "postgresql" or "sqlite"
    where: str  # the SQLite file, or the PostgreSQL schema (never the URL)
    applied: list[int]  # what this run applied
    pending: list[int]  # what is still missing
    latest: int  # the version this gateway needs


async def schema_state(settings: GatewaySettings, *, apply: bool) -> SchemaState:
    """Migrate (`apply`) or only inspect the database. StoreUnavailableError when it cannot be
    reached or a migration fails; ConfigError for a database URL that is not PostgreSQL's."""
    url = postgres_url(settings)
    if url is not None:
        return await _postgres(url, settings, apply)
    return await asyncio.to_thread(_sqlite, settings, apply)


async def _postgres(url: str, settings: GatewaySettings, apply: bool) -> SchemaState:
    password = urlsplit(url).password
    secrets = [s for s in (unquote(password) if password else None, url) if s]
    try:
        conn = await asyncpg.connect(
            url,
            timeout=10,
            statement_cache_size=0 if settings.database_pgbouncer else 100,
            server_settings={"application_name": "ai-gateway-migrate"},
        )
    except Exception as exc:
        detail = scrub(f"{type(exc).__name__}: {exc}", secrets)
        raise StoreUnavailableError(f"PostgreSQL cannot be reached: {detail}") from None
    try:
        applied = await pg_migrations.migrate(conn, SCHEMA) if apply else []
        pending = await pg_migrations.pending_versions(conn, SCHEMA)
    except Exception as exc:
        detail = scrub(f"{type(exc).__name__}: {exc}", secrets)
        raise StoreUnavailableError(f"the migration failed: {detail}") from None
    finally:
        await conn.close()
    latest = migrations.latest(pg_migrations.MIGRATIONS)
    return SchemaState("postgresql", f"schema {SCHEMA}", applied, pending, latest)


def _sqlite(settings: GatewaySettings, apply: bool) -> SchemaState:
    path = sqlite_path(settings)
    latest = migrations.latest(sqlite_migrations.MIGRATIONS)
    if not apply and not path.exists():  # a check creates nothing
        every = [m.version for m in sqlite_migrations.MIGRATIONS]
        return SchemaState("sqlite", str(path), [], every, latest)
    try:
        conn = sqlite3.connect(path, timeout=10, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreUnavailableError(f"cannot open {path}: {exc}") from None
    try:
        applied = sqlite_migrations.migrate(conn) if apply else []
        pending = sqlite_migrations.pending_versions(conn)
    except sqlite3.Error as exc:
        raise StoreUnavailableError(f"the migration of {path} failed: {exc}") from None
    finally:
        conn.close()
    return SchemaState("sqlite", str(path), applied, pending, latest)
