"""What the RAG store's backends share: every method that is one query, run through `_fetch`
(rows) or `_write` (rows changed), and the reads of vector stores, through `_stores` (rows with
their file counts). A backend says how those three run, and does itself what takes a
transaction (adding a file to a store, deletes, batches)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

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
from ai_gateway.stores import rag_queries as q
from ai_gateway.stores.analytics_queries import Dialect


class RagStoreBase(ABC):
    dialect: ClassVar[Dialect]

    @abstractmethod
    async def _fetch(self, query: q.Query) -> list[Any]:
        """Run one query; its rows."""

    @abstractmethod
    async def _write(self, query: q.Query) -> int:
        """Run one statement; the number of rows it changed."""

    @abstractmethod
    async def _stores(self, query: q.Query) -> list[VectorStoreRecord]:
        """The stores `query` selects, with their counts."""

    # Files.

    async def add_file(self, record: FileRecord) -> None:
        await self._write(q.insert_file(self.dialect, record))

    async def get_file(self, file_id: str, viewer: Viewer) -> FileRecord | None:
        rows = await self._fetch(q.get_file(self.dialect, file_id, viewer))
        return q.file_from_row(rows[0]) if rows else None

    async def list_files(
        self, viewer: Viewer, page: Page, purpose: str | None = None
    ) -> tuple[list[FileRecord], bool]:
        query = q.list_files(self.dialect, viewer, page, purpose)
        rows, more = q.page_of(await self._fetch(query), page)
        return [q.file_from_row(row) for row in rows], more

    # Vector stores.

    async def add_store(self, record: VectorStoreRecord) -> None:
        await self._write(q.insert_store(self.dialect, record))

    async def get_store(self, store_id: str, viewer: Viewer) -> VectorStoreRecord | None:
        stores = await self.get_stores([store_id], viewer)
        return stores[0] if stores else None

    async def get_stores(self, store_ids: Sequence[str], viewer: Viewer) -> list[VectorStoreRecord]:
        if not store_ids:
            return []
        return await self._stores(q.get_stores(self.dialect, store_ids, viewer))

    async def list_stores(self, viewer: Viewer, page: Page) -> tuple[list[VectorStoreRecord], bool]:
        # Paged before counting: the extra row (more?) is counted too, which costs little.
        return q.page_of(await self._stores(q.list_stores(self.dialect, viewer, page)), page)

    async def update_store(self, record: VectorStoreRecord) -> None:
        await self._write(q.update_store(self.dialect, record))

    async def touch_store(self, store_id: str, at: int) -> None:
        await self._write(q.touch_store(self.dialect, store_id, at))

    # Files in a vector store.

    async def count_store_files(self, store_id: str) -> int:
        rows = await self._fetch(q.count_store_files(self.dialect, store_id))
        return int(rows[0][0])

    async def get_store_file(self, store_id: str, file_id: str) -> StoreFileRecord | None:
        rows = await self._fetch(q.get_store_file(self.dialect, store_id, file_id))
        return q.store_file_from_row(rows[0]) if rows else None

    async def list_store_files(
        self,
        store_id: str,
        page: Page,
        status: FileStatus | None = None,
        batch_id: str | None = None,
    ) -> tuple[list[StoreFileRecord], bool]:
        query = q.list_store_files(self.dialect, store_id, page, status, batch_id)
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
        query = q.finish_store_file(
            self.dialect, store_id, file_id, status, last_error, usage_bytes, chunks
        )
        return await self._write(query) > 0

    async def update_attributes(
        self, store_id: str, file_id: str, attributes: dict[str, str | float | bool]
    ) -> StoreFileRecord | None:
        rows = await self._fetch(q.update_attributes(self.dialect, store_id, file_id, attributes))
        return q.store_file_from_row(rows[0]) if rows else None

    async def delete_store_file(self, store_id: str, file_id: str) -> bool:
        return await self._write(q.delete_store_file(self.dialect, store_id, file_id)) > 0

    async def pending(self, limit: int) -> list[StoreFileRecord]:
        rows = await self._fetch(q.pending(self.dialect, limit))
        return [q.store_file_from_row(row) for row in rows]

    # File batches.

    async def add_batch(self, record: BatchRecord) -> None:
        await self._write(q.insert_batch(self.dialect, record))
