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

import asyncio
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from ai_gateway.observability.logging import get_logger
from ai_gateway.stores import analytics_queries as q
from ai_gateway.stores.analytics import FeedbackGroup, StoreUnavailableError, UsageGroup
from ai_gateway.stores.migrations import latest
from ai_gateway.stores.migrations.sqlite import MIGRATIONS, migrate
from ai_gateway.usage.records import FeedbackRecord, UsageRecord

T = TypeVar("T")
log = get_logger(__name__)
D = q.SQLITE


def _unavailable(exc: BaseException) -> bool:
    """Errors worth retrying later, as opposed to a record the database refuses."""
    if isinstance(exc, sqlite3.OperationalError | OSError):
        return True
    return type(exc) is sqlite3.DatabaseError  # "file is not a database", corruption


class SQLiteAnalyticsStore:
    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self._busy_timeout_s = busy_timeout_s
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None  # used on the worker thread only
        self._closed = False

    # --- the worker thread -------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None)
        try:
            self._wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            # typeshed's aggregate protocol is narrower than sqlite3 (one int argument)
            conn.create_aggregate("gw_dsum", 1, cast(Any, q.DecimalSum))
            conn.create_aggregate("gw_percentile", 2, cast(Any, q.Percentile))
            versions = migrate(conn)
        except BaseException:
            conn.close()
            raise
        if versions:
            log.info("analytics_schema_migrated", backend="sqlite", versions=versions)
        return conn

    def _wal(self, conn: sqlite3.Connection) -> None:
        # Switching a new file to WAL while another process does the same fails at once with
        # "database is locked" (SQLite does not call its busy handler here): retry until the
        # busy timeout, as any other statement would wait.
        deadline = time.monotonic() + self._busy_timeout_s
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.005)

    def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            self._conn = self._open()
        return work(self._conn)

    async def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreUnavailableError("the SQLite analytics store is closed")
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="analytics-sqlite")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._run, work)
        except Exception as exc:
            if _unavailable(exc):
                raise StoreUnavailableError(
                    f"SQLite analytics store at {self.path}: {type(exc).__name__}: {exc}"
                ) from exc
            raise

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        return await self._call(lambda conn: conn.execute(sql, params).fetchall())

    @staticmethod
    def _transaction(conn: sqlite3.Connection, work: Callable[[], T]) -> T:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = work()
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    # --- the AnalyticsStore protocol -----------------------------------------------------------

    async def start(self) -> None:
        """Open the database (creating the file) and apply pending migrations."""
        await self._call(lambda conn: None)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        executor, self._executor = self._executor, None
        if executor is None:
            return

        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(executor, close)
        executor.shutdown(wait=False)

    async def write_usage(self, records: Sequence[UsageRecord]) -> None:
        if not records:
            return
        sql = q.insert_usage_sql(D)

        def work(conn: sqlite3.Connection) -> None:
            rows = [q.usage_values(r, q.to_micros, q.decimal_text) for r in records]
            self._transaction(conn, lambda: conn.executemany(sql, rows))

        await self._call(work)

    async def write_feedback(self, records: Sequence[FeedbackRecord]) -> None:
        if not records:
            return
        sql = q.insert_feedback_sql(D)

        def work(conn: sqlite3.Connection) -> None:
            rows = [q.feedback_values(r, q.to_micros) for r in records]
            self._transaction(conn, lambda: conn.executemany(sql, rows))

        await self._call(work)

    async def has_request(self, request_id: str) -> bool:
        return bool(await self._fetch(q.has_request_sql(D), (request_id,)))

    def _window(self, start: datetime, end: datetime) -> tuple[int, int]:
        return q.to_micros(start), q.to_micros(end)

    async def usage(
        self, start: datetime, end: datetime, group_by: UsageGroup
    ) -> list[dict[str, Any]]:
        rows = await self._fetch(q.usage_sql(D, group_by), self._window(start, end))
        return [q.usage_row(row) for row in rows]

    async def models(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        rows = await self._fetch(q.models_sql(D), self._window(start, end))
        return [q.models_row(row) for row in rows]

    async def errors(self, start: datetime, end: datetime, limit: int) -> list[dict[str, Any]]:
        rows = await self._fetch(q.errors_sql(D), (*self._window(start, end), limit))
        return [q.error_row(row, q.from_micros) for row in rows]

    async def error_counts(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Failed requests in the window by error type, most frequent first."""
        rows = await self._fetch(q.error_counts_sql(D), self._window(start, end))
        return [q.error_count_row(row) for row in rows]

    async def feedback(
        self, start: datetime, end: datetime, group_by: FeedbackGroup
    ) -> list[dict[str, Any]]:
        rows = await self._fetch(q.feedback_sql(D, group_by), self._window(start, end))
        return [q.feedback_row(row) for row in rows]

    async def timeseries(
        self, start: datetime, end: datetime, bucket_s: int
    ) -> list[dict[str, Any]]:
        if bucket_s < 1:
            raise ValueError("bucket_s must be at least 1")
        rows = await self._fetch(q.timeseries_sql(D), (*self._window(start, end), bucket_s))
        return [q.timeseries_row(row) for row in rows]

    async def purge(self, before: datetime) -> int:
        cutoff = q.to_micros(before)

        def work(conn: sqlite3.Connection) -> int:
            def delete() -> int:
                usage = conn.execute(q.purge_sql(D, "usage_records"), (cutoff,)).rowcount
                return usage + conn.execute(q.purge_sql(D, "feedback_records"), (cutoff,)).rowcount

            return self._transaction(conn, delete)

        return await self._call(work)

    async def schema_version(self) -> int:
        """The highest migration version the database has (0 before the first start)."""
        rows = await self._fetch("SELECT max(version) FROM schema_migrations", ())
        return int(rows[0][0] or 0)

    @staticmethod
    def latest_version() -> int:
        return latest(MIGRATIONS)
