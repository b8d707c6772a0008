"""The analytics store in a SQLite file (the default: `<data_dir>/analytics.db`).

All database work runs on ONE dedicated worker thread that owns the connection, so the event loop
never waits on the disk and SQLite sees a single writer. The database is in WAL mode with
`synchronous=NORMAL`: a committed batch survives the process being killed (not necessarily a power
cut). A batch is one transaction; a request id already stored is skipped, so a retried batch is
safe. Percentiles and cost sums are Python aggregates (see `analytics_queries`).

Errors that mean "try again later" (the file is locked past the busy timeout, the disk is full or
unreadable) raise StoreUnavailableError; a record the database rejects raises the driver's error.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from ai_gateway.stores import analytics_prompts as prompts_report
from ai_gateway.stores import analytics_queries as q
from ai_gateway.stores import analytics_results as out
from ai_gateway.stores.analytics import FeedbackGroup, RequestKey, UsageGroup
from ai_gateway.stores.migrations import latest
from ai_gateway.stores.migrations.sqlite import MIGRATIONS
from ai_gateway.stores.sqlite_worker import SQLiteWorker, transaction
from ai_gateway.usage.records import FeedbackRecord, UsageRecord

D = q.SQLITE
ROWS_PER_INSERT = 100  # x 31 columns: far below SQLite's 32,766 bound parameters


def _aggregates(conn: sqlite3.Connection) -> None:
    # typeshed's aggregate protocol is narrower than sqlite3 (one int argument)
    conn.create_aggregate("gw_dsum", 1, cast(Any, q.DecimalSum))
    conn.create_aggregate("gw_percentile", 2, cast(Any, q.Percentile))


class SQLiteAnalyticsStore:
    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self._db = SQLiteWorker(
            self.path, name="analytics", busy_timeout_s=busy_timeout_s, setup=_aggregates
        )

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        return await self._db.fetch(sql, params)

    # --- the AnalyticsStore protocol -----------------------------------------------------------

    async def start(self) -> None:
        """Open the database (creating the file) and apply pending migrations."""
        await self._db.call(lambda conn: None)

    async def aclose(self) -> None:
        await self._db.aclose()

    async def write_usage(self, records: Sequence[UsageRecord]) -> None:
        if not records:
            return

        def work(conn: sqlite3.Connection) -> None:
            rows = [q.usage_values(r, q.to_micros, q.decimal_text, D) for r in records]

            def insert() -> None:
                # Many rows per statement: a fifth cheaper per row than executemany's one each.
                for start in range(0, len(rows), ROWS_PER_INSERT):
                    chunk = rows[start : start + ROWS_PER_INSERT]
                    params = [value for row in chunk for value in row]
                    conn.execute(q.insert_usage_sql(D, len(chunk)), params)

            transaction(conn, insert)

        await self._db.call(work)

    async def write_feedback(self, records: Sequence[FeedbackRecord]) -> None:
        if not records:
            return
        sql = q.insert_feedback_sql(D)

        def work(conn: sqlite3.Connection) -> None:
            rows = [q.feedback_values(r, q.to_micros) for r in records]
            transaction(conn, lambda: conn.executemany(sql, rows))

        await self._db.call(work)

    async def has_request(self, request_id: str, *, user: str | None = None) -> bool:
        if user is None:
            return bool(await self._fetch(q.has_request_sql(D), (request_id,)))
        return bool(await self._fetch(q.has_request_sql(D, by_user=True), (request_id, user)))

    def _window(self, start: datetime, end: datetime) -> tuple[int, int]:
        return q.to_micros(start), q.to_micros(end)

    async def usage(
        self, start: datetime, end: datetime, group_by: UsageGroup
    ) -> list[dict[str, Any]]:
        rows = await self._fetch(q.usage_sql(D, group_by), self._window(start, end))
        return [out.usage_row(row) for row in rows]

    async def models(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        rows = await self._fetch(q.models_sql(D), self._window(start, end))
        return [out.models_row(row) for row in rows]

    async def errors(self, start: datetime, end: datetime, limit: int) -> list[dict[str, Any]]:
        rows = await self._fetch(q.errors_sql(D), (*self._window(start, end), limit))
        return [out.error_row(row, q.from_micros) for row in rows]

    async def requests(
        self, start: datetime, end: datetime, key: RequestKey, value: str, limit: int
    ) -> list[dict[str, Any]]:
        rows = await self._fetch(q.requests_sql(D, key), (*self._window(start, end), value, limit))
        return [out.request_row(row, q.from_micros) for row in rows]

    async def error_counts(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Failed requests in the window by error type, most frequent first."""
        rows = await self._fetch(q.error_counts_sql(D), self._window(start, end))
        return [out.error_count_row(row) for row in rows]

    async def feedback(
        self, start: datetime, end: datetime, group_by: FeedbackGroup
    ) -> list[dict[str, Any]]:
        rows = await self._fetch(q.feedback_sql(D, group_by), self._window(start, end))
        return [out.feedback_row(row) for row in rows]

    async def prompts(
        self, start: datetime, end: datetime, prompt_id: str | None = None
    ) -> list[dict[str, Any]]:
        window = self._window(start, end)
        by_id = prompt_id is not None
        params = (*window, prompt_id) if by_id else window
        rows = await self._fetch(prompts_report.prompts_sql(D, by_id), params)
        return [prompts_report.prompts_row(row) for row in rows]

    async def timeseries(
        self, start: datetime, end: datetime, bucket_s: int
    ) -> list[dict[str, Any]]:
        if bucket_s < 1:
            raise ValueError("bucket_s must be at least 1")
        rows = await self._fetch(q.timeseries_sql(D), (*self._window(start, end), bucket_s))
        return [out.timeseries_row(row) for row in rows]

    async def purge(self, before: datetime) -> int:
        cutoff = q.to_micros(before)

        def work(conn: sqlite3.Connection) -> int:
            def delete() -> int:
                usage = conn.execute(q.purge_sql(D, "usage_records"), (cutoff,)).rowcount
                return usage + conn.execute(q.purge_sql(D, "feedback_records"), (cutoff,)).rowcount

            return transaction(conn, delete)

        return await self._db.call(work)

    async def schema_version(self) -> int:
        """The highest migration version the database has (0 before the first start)."""
        rows = await self._fetch("SELECT max(version) FROM schema_migrations", ())
        return int(rows[0][0] or 0)

    @staticmethod
    def latest_version() -> int:
        return latest(MIGRATIONS)
