"""A small asyncpg pool with the schema migrated: the plumbing of the PostgreSQL stores.

The pool is created, and the pending migrations applied (all of them: the stores of one database
share one `schema_migrations` history, under an advisory lock), on first use. When PostgreSQL
cannot be reached then, StoreUnavailableError is raised and the next call tries again, so a
gateway can start before its database. Connections broken by a restart are replaced by the pool.

`PostgresOptions` (from the `database_*` settings) change three things. The pool's size. With
`migrate: False` the pool does not migrate: it checks that the schema has every migration this
gateway knows, and is unavailable (naming `ai-gateway migrate`) until it has. With
`pgbouncer: True` it works behind PgBouncer in transaction pooling mode, where consecutive
transactions of one client connection may run on different server connections: no prepared
statement is kept (asyncpg's statement cache is off), and no session state is set; the schema's
search path, otherwise a connection setting, is set with `SET LOCAL` in each transaction (every
query runs in one). Migrations take a transaction-scoped advisory lock, which PgBouncer allows;
nothing uses LISTEN or session locks.

Errors: a refused, reset or timed-out connection, a server shutting down, any server error other
than a data or constraint error: StoreUnavailableError (retry later). Data the server rejects
(SQLSTATE classes 22 and 23) raises asyncpg's error. The DSN may carry a password: it is never
logged, and never part of an error message.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg  # type: ignore[import-untyped]

from ai_gateway.observability.logging import get_logger
from ai_gateway.redaction import scrub
from ai_gateway.stores.analytics import StoreUnavailableError
from ai_gateway.stores.migrations.postgres import migrate, pending_versions, quote_ident

log = get_logger(__name__)
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@dataclass(frozen=True, slots=True)
class PostgresOptions:
    """`min_size` / `max_size`: each store's pool (None: the store's own default).
    `migrate`: apply pending migrations on first use (else only check). `pgbouncer`: the
    transaction-pooling mode described above."""

    min_size: int | None = None
    max_size: int | None = None
    migrate: bool = True
    pgbouncer: bool = False


def behind_message(schema: str, versions: Sequence[int]) -> str:
    return (
        f"the database schema {schema!r} lacks migrations {list(versions)}: run "
        "`ai-gateway migrate` with this configuration (database_migrate_at_start is false, so "
        "the gateway does not migrate it itself)"
    )


def _password(dsn: str) -> str | None:
    try:
        password = urlsplit(dsn).password
    except ValueError:
        return None
    return unquote(password) if password else None


class PostgresPool:
    """`name` ("analytics", "security") labels the errors, the connections' application_name
    and the log event `<name>_schema_migrated`."""

    def __init__(
        self,
        dsn: str,
        *,
        name: str,
        schema: str = "ai_gateway",
        min_size: int = 1,
        max_size: int = 4,
        connect_timeout_s: float = 5.0,
        command_timeout_s: float = 30.0,
        options: PostgresOptions | None = None,
    ) -> None:
        if not SCHEMA_NAME.fullmatch(schema):
            raise ValueError("schema: lower-case letters, digits and _ (at most 63)")
        self.name = name
        self.schema = schema
        self._dsn = dsn
        self._secrets = [s for s in (_password(dsn), dsn) if s]
        options = options or PostgresOptions()
        self._max_size = options.max_size or max_size
        self._min_size = min(
            options.min_size if options.min_size is not None else min_size, self._max_size
        )
        self._migrate = options.migrate
        self._pgbouncer = options.pgbouncer
        # Behind PgBouncer, the search path is set per transaction (see the module docstring).
        self._set_path = f"SET LOCAL search_path TO {quote_ident(schema)}"
        self.connect_timeout_s = connect_timeout_s
        self._command_timeout_s = command_timeout_s
        self._pool: Any = None
        self._opening = asyncio.Lock()
        self._closed = False

    def error(self, exc: Exception) -> Exception:
        """`exc` itself when the database refused the data; StoreUnavailableError otherwise."""
        rejected: tuple[type[Exception], ...] = (
            asyncpg.DataError,
            asyncpg.IntegrityConstraintViolationError,
            StoreUnavailableError,
        )
        if isinstance(exc, rejected):
            return exc
        detail = scrub(f"{type(exc).__name__}: {exc}", self._secrets)
        return StoreUnavailableError(f"PostgreSQL {self.name} store unavailable: {detail}")

    async def ready(self) -> Any:
        """The pool, created and the schema migrated on first use."""
        if self._closed:
            raise StoreUnavailableError(f"the PostgreSQL {self.name} store is closed")
        if self._pool is not None:
            return self._pool
        async with self._opening:
            if self._pool is None:
                self._pool = await self._open()
        return self._pool

    async def _open(self) -> Any:
        settings = {"application_name": f"ai-gateway-{self.name}"}
        if not self._pgbouncer:
            settings["search_path"] = quote_ident(self.schema)
        try:
            pool = await asyncpg.create_pool(
                self._dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                timeout=self.connect_timeout_s,
                command_timeout=self._command_timeout_s,
                server_settings=settings,
                # Prepared statements outlive a transaction: not behind PgBouncer.
                statement_cache_size=0 if self._pgbouncer else 100,
            )
        except Exception as exc:
            raise self.error(exc) from None
        try:
            async with pool.acquire(timeout=self.connect_timeout_s) as conn:
                if self._migrate:
                    versions = await migrate(conn, self.schema)
                else:
                    versions = []
                    behind = await pending_versions(conn, self.schema)
                    if behind:
                        raise StoreUnavailableError(behind_message(self.schema, behind))
        except BaseException as exc:
            pool.terminate()
            if isinstance(exc, Exception):
                raise self.error(exc) from None
            raise
        if versions:
            log.info(f"{self.name}_schema_migrated", backend="postgres", versions=versions)
        return pool

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        if self._pgbouncer:
            async with self.transaction() as conn:
                return list(await conn.fetch(sql, *args))
        pool = await self.ready()
        try:
            async with pool.acquire(timeout=self.connect_timeout_s) as conn:
                return list(await conn.fetch(sql, *args))
        except Exception as exc:
            raise self.error(exc) from None

    async def write(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """`sql` once per row, in one transaction (pipelined)."""
        async with self.transaction() as conn:
            await conn.executemany(sql, rows)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        """A connection in a transaction; errors inside are translated as described above."""
        pool = await self.ready()
        try:
            async with (
                pool.acquire(timeout=self.connect_timeout_s) as conn,
                conn.transaction(),
            ):
                if self._pgbouncer:
                    await conn.execute(self._set_path)
                yield conn
        except Exception as exc:
            error = self.error(exc)
            if error is exc:
                raise
            raise error from None

    async def aclose(self) -> None:
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), self.connect_timeout_s)
        except Exception:  # connections that do not close in time are cut
            pool.terminate()
        except asyncio.CancelledError:
            pool.terminate()
            raise
