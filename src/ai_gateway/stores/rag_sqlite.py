"""The RAG store in the analytics SQLite file (`<data_dir>/analytics.db` by default), on its own
connection and worker thread (`SQLiteWorker`), beside the other stores of that file. Every write
that touches several rows is one transaction; the single writer thread makes "add unless there"
and "finish unless no longer in progress" atomic. The one-query methods are `RagStoreBase`'s."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from ai_gateway.rag.records import BatchRecord, StoreFileRecord, VectorStoreRecord
from ai_gateway.stores import analytics_queries as aq
from ai_gateway.stores import rag_queries as q
from ai_gateway.stores.rag_base import RagStoreBase
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


class SQLiteRagStore(RagStoreBase):
    dialect = D

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self._db = SQLiteWorker(self.path, name="rag", busy_timeout_s=busy_timeout_s)

    async def start(self) -> None:
        await self._db.call(lambda conn: None)

    async def aclose(self) -> None:
        await self._db.aclose()

    async def _write(self, query: q.Query) -> int:
        return await self._db.call(lambda conn: conn.execute(*query).rowcount)

    async def _fetch(self, query: q.Query) -> list[Any]:
        return await self._db.fetch(*query)

    async def _stores(self, query: q.Query) -> list[VectorStoreRecord]:
        return await self._db.call(lambda conn: _stores(conn, query))

    async def delete_file(self, file_id: str) -> list[str]:
        rows_sql, file_sql = q.delete_file(D, file_id)

        def work(conn: sqlite3.Connection) -> list[str]:
            def delete() -> list[str]:
                stores = [row[0] for row in conn.execute(*rows_sql).fetchall()]
                conn.execute(*file_sql)
                return stores

            return transaction(conn, delete)

        return await self._db.call(work)

    async def delete_store(self, store_id: str) -> bool:
        *contents, store = q.delete_store(D, store_id)

        def work(conn: sqlite3.Connection) -> bool:
            def delete() -> bool:
                for query in contents:
                    conn.execute(*query)
                return conn.execute(*store).rowcount > 0

            return transaction(conn, delete)

        return await self._db.call(work)

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
