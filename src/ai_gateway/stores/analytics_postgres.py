"""The analytics store in PostgreSQL (when DATABASE_URL is set), through a small asyncpg pool.

The pool is created, and migrations applied, by `start()`; when PostgreSQL cannot be reached then,
`start()` raises StoreUnavailableError and every later call tries again, so a gateway can start
before its database and catch up. A batch is one transaction (`executemany`, pipelined) with
`ON CONFLICT (request_id) DO NOTHING`, so a batch retried after a lost acknowledgement is not
stored twice. Connections broken by a restart are replaced by the pool on the next call.

Errors: a refused, reset or timed-out connection, a server shutting down, any server error other
than a data or constraint error: StoreUnavailableError (retry later). A record the server rejects
as data (SQLSTATE classes 22 and 23) raises asyncpg's error.

The DSN may carry a password: it is never logged, and never part of an error message.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg  # type: ignore[import-untyped]

from ai_gateway.observability.logging import get_logger
from ai_gateway.redaction import scrub
from ai_gateway.stores import analytics_queries as q
from ai_gateway.stores.analytics import FeedbackGroup, StoreUnavailableError, UsageGroup
from ai_gateway.stores.migrations import latest
from ai_gateway.stores.migrations.postgres import MIGRATIONS, migrate, quote_ident
from ai_gateway.usage.records import FeedbackRecord, UsageRecord

log = get_logger(__name__)
D = q.POSTGRES
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _keep(value: Any) -> Any:
    return value


def _password(dsn: str) -> str | None:
    try:
        password = urlsplit(dsn).password
    except ValueError:
        return None
    return unquote(password) if password else None


class PostgresAnalyticsStore:
    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "ai_gateway",
        min_size: int = 1,
        max_size: int = 4,
        connect_timeout_s: float = 5.0,
        command_timeout_s: float = 30.0,
    ) -> None:
        if not _SCHEMA_NAME.fullmatch(schema):
            raise ValueError("schema: lower-case letters, digits and _ (at most 63)")
        self.schema = schema
        self._dsn = dsn
        self._secrets = [s for s in (_password(dsn), dsn) if s]
        self._min_size = min_size
        self._max_size = max_size
        self._connect_timeout_s = connect_timeout_s
        self._command_timeout_s = command_timeout_s
        self._pool: Any = None
        self._opening = asyncio.Lock()
        self._closed = False

    def _error(self, exc: Exception) -> Exception:
        """`exc` itself when the database refused the data; StoreUnavailableError otherwise."""
        rejected: tuple[type[Exception], ...] = (
            asyncpg.DataError,
            asyncpg.IntegrityConstraintViolationError,
            StoreUnavailableError,
        )
        if isinstance(exc, rejected):
            return exc
        detail = scrub(f"{type(exc).__name__}: {exc}", self._secrets)
        return StoreUnavailableError(f"PostgreSQL analytics store unavailable: {detail}")

    async def _ready(self) -> Any:
        if self._closed:
            raise StoreUnavailableError("the PostgreSQL analytics store is closed")
        if self._pool is not None:
            return self._pool
        async with self._opening:
            if self._pool is None:
                self._pool = await self._open()
        return self._pool

    async def _open(self) -> Any:
        try:
            pool = await asyncpg.create_pool(
                self._dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                timeout=self._connect_timeout_s,
                command_timeout=self._command_timeout_s,
                server_settings={
                    "search_path": quote_ident(self.schema),
                    "application_name": "ai-gateway-analytics",
                },
            )
        except Exception as exc:
            raise self._error(exc) from None
        try:
            async with pool.acquire(timeout=self._connect_timeout_s) as conn:
                versions = await migrate(conn, self.schema)
        except BaseException as exc:
            pool.terminate()
            if isinstance(exc, Exception):
                raise self._error(exc) from None
            raise
        if versions:
            log.info("analytics_schema_migrated", backend="postgres", versions=versions)
        return pool

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        pool = await self._ready()
        try:
            async with pool.acquire(timeout=self._connect_timeout_s) as conn:
                return list(await conn.fetch(sql, *args))
        except Exception as exc:
            raise self._error(exc) from None

    async def _write(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        pool = await self._ready()
        try:
            async with (
                pool.acquire(timeout=self._connect_timeout_s) as conn,
                conn.transaction(),
            ):
                await conn.executemany(sql, rows)
        except Exception as exc:
            error = self._error(exc)
            if error is exc:
                raise
            raise error from None

    # --- the AnalyticsStore protocol -----------------------------------------------------------

    async def start(self) -> None:
        """Connect and migrate; StoreUnavailableError when PostgreSQL cannot be reached (later
        calls try again)."""
        await self._ready()

    async def aclose(self) -> None:
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), self._connect_timeout_s)
        except Exception:  # connections that do not close in time are cut
            pool.terminate()
        except asyncio.CancelledError:
            pool.terminate()
            raise

    async def write_usage(self, records: Sequence[UsageRecord]) -> None:
        if records:
            rows = [q.usage_values(r, q.utc, _keep) for r in records]
            await self._write(q.insert_usage_sql(D), rows)

    async def write_feedback(self, records: Sequence[FeedbackRecord]) -> None:
        if records:
            rows = [q.feedback_values(r, q.utc) for r in records]
            await self._write(q.insert_feedback_sql(D), rows)

    async def has_request(self, request_id: str) -> bool:
        return bool(await self._fetch(q.has_request_sql(D), request_id))

    async def usage(
        self, start: datetime, end: datetime, group_by: UsageGroup
    ) -> list[dict[str, Any]]:
        rows = await self._fetch(q.usage_sql(D, group_by), q.utc(start), q.utc(end))
        return [q.usage_row(row) for row in rows]

    async def models(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        rows = await self._fetch(q.models_sql(D), q.utc(start), q.utc(end))
        return [q.models_row(row) for row in rows]

    async def errors(self, start: datetime, end: datetime, limit: int) -> list[dict[str, Any]]:
        rows = await self._fetch(q.errors_sql(D), q.utc(start), q.utc(end), limit)
        return [q.error_row(row, q.utc) for row in rows]

    async def error_counts(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Failed requests in the window by error type, most frequent first."""
        rows = await self._fetch(q.error_counts_sql(D), q.utc(start), q.utc(end))
        return [q.error_count_row(row) for row in rows]

    async def feedback(
        self, start: datetime, end: datetime, group_by: FeedbackGroup
    ) -> list[dict[str, Any]]:
        rows = await self._fetch(q.feedback_sql(D, group_by), q.utc(start), q.utc(end))
        return [q.feedback_row(row) for row in rows]

    async def timeseries(
        self, start: datetime, end: datetime, bucket_s: int
    ) -> list[dict[str, Any]]:
        if bucket_s < 1:
            raise ValueError("bucket_s must be at least 1")
        rows = await self._fetch(q.timeseries_sql(D), q.utc(start), q.utc(end), bucket_s)
        return [q.timeseries_row(row) for row in rows]

    async def purge(self, before: datetime) -> int:
        pool = await self._ready()
        cutoff = q.utc(before)
        try:
            async with (
                pool.acquire(timeout=self._connect_timeout_s) as conn,
                conn.transaction(),
            ):
                deleted = 0
                for table in ("usage_records", "feedback_records"):
                    status = await conn.execute(q.purge_sql(D, table), cutoff)
                    deleted += int(status.rsplit(" ", 1)[-1])  # "DELETE <n>"
        except Exception as exc:
            raise self._error(exc) from None
        return deleted

    async def schema_version(self) -> int:
        """The highest migration version the database has."""
        rows = await self._fetch("SELECT max(version) FROM schema_migrations")
        return int(rows[0][0] or 0)

    @staticmethod
    def latest_version() -> int:
        return latest(MIGRATIONS)
