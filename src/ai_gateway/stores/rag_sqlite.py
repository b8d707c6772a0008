"""The RAG store in the analytics SQLite file (`<data_dir>/analytics.db` by default), on its own
connection and worker thread (`SQLiteWorker`), beside the other stores of that file. Every write
that touches several rows is one transaction; the single writer thread makes "add unless there"
and "finish unless no longer in progress" atomic."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ai_gateway.rag.records import (
    BatchRecord,
    FileRecord,
    FileStatus,
    LastError,
    Page,
    StoreFileRecord,
    VectorStoreRecord,
    Viewer,
)
from ai_gateway.stores import analytics_queries as aq
from ai_gateway.stores import rag_queries as q
from ai_gateway.stores.sqlite_worker import SQLiteWorker, transaction

D = aq.SQLITE


def _stores(conn: sqlite3.Connection, query: q.Query) -> list[VectorStoreRecord]:
    """The stores `query` selects, with their counts (on the worker thread)."""
    rows = conn.execute(*query).fetchall()
    if not rows:
        return []
    counts = conn.execute(*q.store_counts(D, [row[0] for row in rows])).fetchall()
    return q.stores_from_rows(rows, counts)


def _batch(conn: sqlite3.Connection, store_id: str, batch_id: str) -> BatchRecord | None:
    row = conn.execute(*q.get_batch(D, store_id, batch_id)).fetchone()
    if row is None:
        return None
    return q.batch_from_row(row, conn.execute(*q.batch_counts(D, store_id, batch_id)).fetchall())


class SQLiteRagStore:
    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self._db = SQLiteWorker(self.path, name="rag", busy_timeout_s=busy_timeout_s)

    async def start(self) -> None:
        await self._db.call(lambda conn: None)

    async def aclose(self) -> None:
        await self._db.aclose()

    async def _write(self, query: q.Query) -> int:
        """Run one statement; the number of rows it changed."""
        return await self._db.call(lambda conn: conn.execute(*query).rowcount)

    async def _fetch(self, query: q.Query) -> list[Any]:
        return await self._db.fetch(*query)

    # Files.

    async def add_file(self, record: FileRecord) -> None:
        await self._write(q.insert_file(D, record))

    async def get_file(self, file_id: str, viewer: Viewer) -> FileRecord | None:
        rows = await self._fetch(q.get_file(D, file_id, viewer))
        return q.file_from_row(rows[0]) if rows else None

    async def list_files(
        self, viewer: Viewer, page: Page, purpose: str | None = None
    ) -> tuple[list[FileRecord], bool]:
        rows, more = q.page_of(await self._fetch(q.list_files(D, viewer, page, purpose)), page)
        return [q.file_from_row(row) for row in rows], more

    async def delete_file(self, file_id: str) -> list[str]:
        rows_sql, file_sql = q.delete_file(D, file_id)

        def work(conn: sqlite3.Connection) -> list[str]:
            def delete() -> list[str]:
                stores = [row[0] for row in conn.execute(*rows_sql).fetchall()]
                conn.execute(*file_sql)
                return stores

            return transaction(conn, delete)

        return await self._db.call(work)

    # Vector stores.

    async def add_store(self, record: VectorStoreRecord) -> None:
        await self._write(q.insert_store(D, record))

    async def get_store(self, store_id: str, viewer: Viewer) -> VectorStoreRecord | None:
        stores = await self.get_stores([store_id], viewer)
        return stores[0] if stores else None

    async def get_stores(self, store_ids: Sequence[str], viewer: Viewer) -> list[VectorStoreRecord]:
        if not store_ids:
            return []
        query = q.get_stores(D, store_ids, viewer)
        return await self._db.call(lambda conn: _stores(conn, query))

    async def list_stores(self, viewer: Viewer, page: Page) -> tuple[list[VectorStoreRecord], bool]:
        query = q.list_stores(D, viewer, page)
        # Paged before counting: the extra row (more?) is counted too, which costs little.
        stores = await self._db.call(lambda conn: _stores(conn, query))
        return q.page_of(stores, page)

    async def update_store(self, record: VectorStoreRecord) -> None:
        await self._write(q.update_store(D, record))

    async def delete_store(self, store_id: str) -> bool:
        *contents, store = q.delete_store(D, store_id)

        def work(conn: sqlite3.Connection) -> bool:
            def delete() -> bool:
                for query in contents:
                    conn.execute(*query)
                return conn.execute(*store).rowcount > 0

            return transaction(conn, delete)

        return await self._db.call(work)

    async def touch_store(self, store_id: str, at: int) -> None:
        await self._write(q.touch_store(D, store_id, at))

    # Files in a vector store.

    async def add_store_file(self, record: StoreFileRecord) -> tuple[StoreFileRecord, bool]:
        insert = q.insert_store_file(D, record)
        select = q.get_store_file(D, record.store_id, record.file_id)

        def work(conn: sqlite3.Connection) -> tuple[StoreFileRecord, bool]:
            def add() -> tuple[StoreFileRecord, bool]:
                if conn.execute(*insert).rowcount:
                    return record, True
                return q.store_file_from_row(conn.execute(*select).fetchone()), False

            return transaction(conn, add)

        return await self._db.call(work)

    async def count_store_files(self, store_id: str) -> int:
        rows = await self._fetch(q.count_store_files(D, store_id))
        return int(rows[0][0])

    async def get_store_file(self, store_id: str, file_id: str) -> StoreFileRecord | None:
        rows = await self._fetch(q.get_store_file(D, store_id, file_id))
        return q.store_file_from_row(rows[0]) if rows else None

    async def list_store_files(
        self,
        store_id: str,
        page: Page,
        status: FileStatus | None = None,
        batch_id: str | None = None,
    ) -> tuple[list[StoreFileRecord], bool]:
        query = q.list_store_files(D, store_id, page, status, batch_id)
        rows, more = q.page_of(await self._fetch(query), page)
        return [q.store_file_from_row(row) for row in rows], more

    async def finish_store_file(
        self,
        store_id: str,
        file_id: str,
        status: FileStatus,
        *,
        last_error: LastError | None = None,
        usage_bytes: int = 0,
        chunks: int = 0,
    ) -> bool:
        query = q.finish_store_file(D, store_id, file_id, status, last_error, usage_bytes, chunks)
        return await self._write(query) > 0

    async def update_attributes(
        self, store_id: str, file_id: str, attributes: dict[str, str | float | bool]
    ) -> StoreFileRecord | None:
        rows = await self._fetch(q.update_attributes(D, store_id, file_id, attributes))
        return q.store_file_from_row(rows[0]) if rows else None

    async def delete_store_file(self, store_id: str, file_id: str) -> bool:
        return await self._write(q.delete_store_file(D, store_id, file_id)) > 0

    async def pending(self, limit: int) -> list[StoreFileRecord]:
        return [q.store_file_from_row(row) for row in await self._fetch(q.pending(D, limit))]

    # File batches.

    async def add_batch(self, record: BatchRecord) -> None:
        await self._write(q.insert_batch(D, record))

    async def get_batch(self, store_id: str, batch_id: str) -> BatchRecord | None:
        return await self._db.call(lambda conn: _batch(conn, store_id, batch_id))

    async def cancel_batch(self, store_id: str, batch_id: str) -> BatchRecord | None:
        mark, files = q.cancel_batch(D, store_id, batch_id)

        def work(conn: sqlite3.Connection) -> BatchRecord | None:
            def cancel() -> BatchRecord | None:
                if not conn.execute(*mark).rowcount:
                    return None
                conn.execute(*files)
                return _batch(conn, store_id, batch_id)

            return transaction(conn, cancel)

        return await self._db.call(work)
