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

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ai_gateway.stores import analytics_prompts as prompts_report
from ai_gateway.stores import analytics_queries as q
from ai_gateway.stores import analytics_results as out
from ai_gateway.stores.analytics import FeedbackGroup, RequestKey, UsageGroup
from ai_gateway.stores.migrations import latest
from ai_gateway.stores.migrations.postgres import MIGRATIONS
from ai_gateway.stores.postgres_pool import PostgresOptions, PostgresPool
from ai_gateway.usage.records import FeedbackRecord, UsageRecord

D = q.POSTGRES


def _keep(value: Any) -> Any:
    return value


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
        options: PostgresOptions | None = None,
    ) -> None:
        self._db = PostgresPool(
            dsn,
            name="analytics",
            schema=schema,
            min_size=min_size,
            max_size=max_size,
            connect_timeout_s=connect_timeout_s,
            command_timeout_s=command_timeout_s,
            options=options,
        )
        self.schema = schema

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        return await self._db.fetch(sql, *args)

    async def _write(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        await self._db.write(sql, rows)

    # --- the AnalyticsStore protocol -----------------------------------------------------------

    async def start(self) -> None:
        """Connect and migrate; StoreUnavailableError when PostgreSQL cannot be reached (later
        calls try again)."""
        await self._db.ready()

    async def aclose(self) -> None:
        await self._db.aclose()

    async def write_usage(self, records: Sequence[UsageRecord]) -> None:
        if records:
            rows = [q.usage_values(r, q.utc, _keep, D) for r in records]
            await self._write(q.insert_usage_sql(D), rows)

    async def write_feedback(self, records: Sequence[FeedbackRecord]) -> None:
        if records:
            rows = [q.feedback_values(r, q.utc) for r in records]
            await self._write(q.insert_feedback_sql(D), rows)

    async def has_request(self, request_id: str, *, user: str | None = None) -> bool:
        if user is None:
            return bool(await self._fetch(q.has_request_sql(D), request_id))
        return bool(await self._fetch(q.has_request_sql(D, by_user=True), request_id, user))

    async def usage(
        self, start: datetime, end: datetime, group_by: UsageGroup
    ) -> list[dict[str, Any]]:
        rows = await self._fetch(q.usage_sql(D, group_by), q.utc(start), q.utc(end))
        return [out.usage_row(row) for row in rows]

    async def models(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        rows = await self._fetch(q.models_sql(D), q.utc(start), q.utc(end))
        return [out.models_row(row) for row in rows]

    async def errors(self, start: datetime, end: datetime, limit: int) -> list[dict[str, Any]]:
        rows = await self._fetch(q.errors_sql(D), q.utc(start), q.utc(end), limit)
        return [out.error_row(row, q.utc) for row in rows]

    async def requests(
        self, start: datetime, end: datetime, key: RequestKey, value: str, limit: int
    ) -> list[dict[str, Any]]:
        sql = q.requests_sql(D, key)
        rows = await self._fetch(sql, q.utc(start), q.utc(end), value, limit)
        return [out.request_row(row, q.utc) for row in rows]

    async def error_counts(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Failed requests in the window by error type, most frequent first."""
        rows = await self._fetch(q.error_counts_sql(D), q.utc(start), q.utc(end))
        return [out.error_count_row(row) for row in rows]

    async def feedback(
        self, start: datetime, end: datetime, group_by: FeedbackGroup
    ) -> list[dict[str, Any]]:
        rows = await self._fetch(q.feedback_sql(D, group_by), q.utc(start), q.utc(end))
        return [out.feedback_row(row) for row in rows]

    async def prompts(
        self, start: datetime, end: datetime, prompt_id: str | None = None
    ) -> list[dict[str, Any]]:
        window = (q.utc(start), q.utc(end))
        by_id = prompt_id is not None
        params = (*window, prompt_id) if by_id else window
        rows = await self._fetch(prompts_report.prompts_sql(D, by_id), *params)
        return [prompts_report.prompts_row(row) for row in rows]

    async def timeseries(
        self, start: datetime, end: datetime, bucket_s: int
    ) -> list[dict[str, Any]]:
        if bucket_s < 1:
            raise ValueError("bucket_s must be at least 1")
        rows = await self._fetch(q.timeseries_sql(D), q.utc(start), q.utc(end), bucket_s)
        return [out.timeseries_row(row) for row in rows]

    async def purge(self, before: datetime) -> int:
        cutoff = q.utc(before)
        deleted = 0
        async with self._db.transaction() as conn:
            for table in ("usage_records", "feedback_records"):
                status = await conn.execute(q.purge_sql(D, table), cutoff)
                deleted += int(status.rsplit(" ", 1)[-1])  # "DELETE <n>"
        return deleted

    async def schema_version(self) -> int:
        """The highest migration version the database has."""
        rows = await self._fetch("SELECT max(version) FROM schema_migrations")
        return int(rows[0][0] or 0)

    @staticmethod
    def latest_version() -> int:
        return latest(MIGRATIONS)
