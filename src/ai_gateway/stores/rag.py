"""The RAG store's interface: file metadata, vector stores, the files in each store and file
batches (docs/rag.md). File bytes live under the data directory and vectors in Qdrant; this
store holds everything else, so that ingestion's state survives a restart.

It lives in the analytics database (same SQLite file, or same PostgreSQL schema) and shares its
migration history; `ai_gateway.stores.factory.open_rag_store(settings)` picks the backend.
"The database is down" raises `StoreUnavailableError`, as the other stores do.

Lists are pages in creation order (a sequence number the store keeps, so items made in the same
second keep their order); `viewer` limits every read to what that caller may see (records.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

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


class RagStore(Protocol):
    async def start(self) -> None:
        """Connect and apply pending migrations (StoreUnavailableError when it cannot)."""
        ...

    async def aclose(self) -> None: ...

    # Files.
    async def add_file(self, record: FileRecord) -> None: ...

    async def get_file(self, file_id: str, viewer: Viewer) -> FileRecord | None: ...

    async def list_files(
        self, viewer: Viewer, page: Page, purpose: str | None = None
    ) -> tuple[list[FileRecord], bool]:
        """A page of files and whether there are more."""
        ...

    async def delete_file(self, file_id: str) -> list[str]:
        """Delete the file and its rows in every vector store; the ids of those stores."""
        ...

    # Vector stores.
    async def add_store(self, record: VectorStoreRecord) -> None: ...

    async def get_store(self, store_id: str, viewer: Viewer) -> VectorStoreRecord | None:
        """With its file counts and usage bytes."""
        ...

    async def get_stores(self, store_ids: Sequence[str], viewer: Viewer) -> list[VectorStoreRecord]:
        """Those of `store_ids` that exist and `viewer` sees (any order)."""
        ...

    async def list_stores(
        self, viewer: Viewer, page: Page
    ) -> tuple[list[VectorStoreRecord], bool]: ...

    async def update_store(self, record: VectorStoreRecord) -> None:
        """Save the name, description, metadata, expires_after and last_active_at."""
        ...

    async def delete_store(self, store_id: str) -> bool:
        """Delete the store, its file rows and its batches; False when there was none."""
        ...

    async def touch_store(self, store_id: str, at: int) -> None:
        """Set its last_active_at (a search or a file added)."""
        ...

    # Files in a vector store.
    async def add_store_file(self, record: StoreFileRecord) -> tuple[StoreFileRecord, bool]:
        """Add the file to the store unless it is there: (the row, True when it was added).
        Re-adding a file is idempotent: the existing row comes back, unchanged."""
        ...

    async def count_store_files(self, store_id: str) -> int: ...

    async def get_store_file(self, store_id: str, file_id: str) -> StoreFileRecord | None: ...

    async def list_store_files(
        self,
        store_id: str,
        page: Page,
        status: FileStatus | None = None,
        batch_id: str | None = None,
    ) -> tuple[list[StoreFileRecord], bool]: ...

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
        """Move an `in_progress` row to `status`; False when the row is gone or no longer
        in progress (deleted, or its batch cancelled meanwhile)."""
        ...

    async def update_attributes(
        self, store_id: str, file_id: str, attributes: dict[str, str | float | bool]
    ) -> StoreFileRecord | None: ...

    async def delete_store_file(self, store_id: str, file_id: str) -> bool: ...

    async def pending(self, limit: int) -> list[StoreFileRecord]:
        """Rows still `in_progress`, oldest first: the work a restart resumes."""
        ...

    # File batches.
    async def add_batch(self, record: BatchRecord) -> None: ...

    async def get_batch(self, store_id: str, batch_id: str) -> BatchRecord | None:
        """With the counts of its files."""
        ...

    async def cancel_batch(self, store_id: str, batch_id: str) -> BatchRecord | None:
        """Mark it cancelled and its files still in progress `cancelled`; None when there is no
        such batch."""
        ...
