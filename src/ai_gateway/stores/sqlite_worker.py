"""One SQLite connection on one dedicated worker thread: the plumbing of the SQLite stores.

The thread owns the connection, so the event loop never waits on the disk and each store is a
single writer. The database is in WAL mode with `synchronous=NORMAL` (a committed transaction
survives the process being killed, not necessarily a power cut); several stores, in one process
or several, may open the same file. The first use opens the connection and applies the pending
schema migrations (all of them: the stores of one database share one `schema_migrations`
history; the runner takes the write lock, so concurrent openers apply each version once).

Errors that mean "try again later" (the file locked past the busy timeout, a full or unreadable
disk, a file that is not a database) raise StoreUnavailableError; others (a constraint the data
breaks) propagate as the driver raised them.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ai_gateway.observability.logging import get_logger
from ai_gateway.stores.analytics import StoreUnavailableError
from ai_gateway.stores.migrations.sqlite import migrate

T = TypeVar("T")
log = get_logger(__name__)


def unavailable(exc: BaseException) -> bool:
    """Errors worth retrying later, as opposed to data the database refuses."""
    if isinstance(exc, sqlite3.OperationalError | OSError):
        return True
    return type(exc) is sqlite3.DatabaseError  # "file is not a database", corruption


def transaction(conn: sqlite3.Connection, work: Callable[[], T]) -> T:
    """Run `work` in one write transaction (`BEGIN IMMEDIATE`: the write lock from the start)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work()
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


class SQLiteWorker:
    """`name` ("analytics", "security") labels the thread, the errors and the log event
    `<name>_schema_migrated`; `setup` runs on each new connection before migrating (to register
    functions and aggregates)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        name: str,
        busy_timeout_s: float = 5.0,
        setup: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.name = name
        self._busy_timeout_s = busy_timeout_s
        self._setup = setup
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None  # used on the worker thread only
        self._closed = False

    # --- on the worker thread ----------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None)
        try:
            self._wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            if self._setup is not None:
                self._setup(conn)
            versions = migrate(conn)
        except BaseException:
            conn.close()
            raise
        if versions:
            log.info(f"{self.name}_schema_migrated", backend="sqlite", versions=versions)
        return conn

    def _wal(self, conn: sqlite3.Connection) -> None:
        # Switching a new file to WAL while another connection does the same fails at once with
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

    # --- from the event loop -----------------------------------------------------------------

    async def call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work(connection)` on the worker thread (opening and migrating on first use)."""
        if self._closed:
            raise StoreUnavailableError(f"the SQLite {self.name} store is closed")
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"{self.name}-sqlite")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._run, work)
        except Exception as exc:
            if unavailable(exc):
                raise StoreUnavailableError(
                    f"SQLite {self.name} store at {self.path}: {type(exc).__name__}: {exc}"
                ) from exc
            raise

    async def fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        return await self.call(lambda conn: conn.execute(sql, params).fetchall())

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
