"""The RAG store in the analytics PostgreSQL database (when DATABASE_URL is set): its own small
asyncpg pool (`PostgresPool`) in the analytics store's schema. Every write that touches several
rows is one transaction; "add unless there" is an `INSERT ... ON CONFLICT DO NOTHING` followed by
a read of the row that won, so concurrent adds of one file agree on one row. The one-query
methods are `RagStoreBase`'s."""

from __future__ import annotations

from typing import Any

from ai_gateway.rag.records import BatchRecord, StoreFileRecord, VectorStoreRecord
from ai_gateway.stores import analytics_queries as aq
from ai_gateway.stores import rag_queries as q
from ai_gateway.stores.analytics import StoreUnavailableError
from ai_gateway.stores.postgres_pool import PostgresOptions, PostgresPool
from ai_gateway.stores.rag_base import RagStoreBase

D = aq.POSTGRES
ADD_ATTEMPTS = 3  # an add that conflicts with a row deleted before it can be read tries again


def _changed(status: str) -> int:
    """The row count of a command status ("UPDATE 1", "INSERT 0 1")."""
    return int(status.rsplit(" ", 1)[-1])


async def _batch(conn: Any, store_id: str, batch_id: str) -> BatchRecord | None:
    sql, args = q.get_batch(D, store_id, batch_id)
    row = await conn.fetchrow(sql, *args)
    if row is None:
        return None
    sql, args = q.batch_counts(D, store_id, batch_id)
    return q.batch_from_row(row, await conn.fetch(sql, *args))


class PostgresRagStore(RagStoreBase):
    dialect = D

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
            name="rag",
            schema=schema,
            min_size=min_size,
            max_size=max_size,
            connect_timeout_s=connect_timeout_s,
            command_timeout_s=command_timeout_s,
            options=options,
        )

    async def start(self) -> None:
        await self._db.ready()

    async def aclose(self) -> None:
        await self._db.aclose()

    async def _write(self, query: q.Query) -> int:
        async with self._db.transaction() as conn:
            return _changed(await conn.execute(query[0], *query[1]))

    async def _fetch(self, query: q.Query) -> list[Any]:
        return await self._db.fetch(query[0], *query[1])

    async def _stores(self, query: q.Query) -> list[VectorStoreRecord]:
        rows = await self._fetch(query)
        if not rows:
            return []
        counts = await self._fetch(q.store_counts(D, [row[0] for row in rows]))
        return q.stores_from_rows(rows, counts)

    async def delete_file(self, file_id: str) -> list[str]:
        (rows_sql, rows_args), (file_sql, file_args) = q.delete_file(D, file_id)
        async with self._db.transaction() as conn:
            stores = [row[0] for row in await conn.fetch(rows_sql, *rows_args)]
            await conn.execute(file_sql, *file_args)
        return stores

    async def delete_store(self, store_id: str) -> bool:
        *contents, (store_sql, store_args) = q.delete_store(D, store_id)
        async with self._db.transaction() as conn:
            for sql, args in contents:
                await conn.execute(sql, *args)
            deleted = _changed(await conn.execute(store_sql, *store_args))
        return deleted > 0

    async def add_store_file(self, record: StoreFileRecord) -> tuple[StoreFileRecord, bool]:
        insert_sql, insert_args = q.insert_store_file(D, record)
        select_sql, select_args = q.get_store_file(D, record.store_id, record.file_id)
        for _ in range(ADD_ATTEMPTS):
            # Read committed: the read, a statement after the insert, sees the row it lost to.
            async with self._db.transaction() as conn:
                if _changed(await conn.execute(insert_sql, *insert_args)):
                    return record, True
                row = await conn.fetchrow(select_sql, *select_args)
            if row is not None:
                return q.store_file_from_row(row), False
        raise StoreUnavailableError(
            f"PostgreSQL rag store: file {record.file_id} in {record.store_id} kept changing"
        )

    async def get_batch(self, store_id: str, batch_id: str) -> BatchRecord | None:
        async with self._db.transaction() as conn:
            return await _batch(conn, store_id, batch_id)

    async def cancel_batch(self, store_id: str, batch_id: str) -> BatchRecord | None:
        (mark_sql, args), (files_sql, _) = q.cancel_batch(D, store_id, batch_id)
        async with self._db.transaction() as conn:
            if not _changed(await conn.execute(mark_sql, *args)):
                return None
            await conn.execute(files_sql, *args)
            return await _batch(conn, store_id, batch_id)
