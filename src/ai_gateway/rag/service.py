"""Files and vector stores as OpenAI's API defines them (docs/rag.md): what the API routes
call. Every read and change goes through the caller's `Viewer`: a file or store the caller may
not see does not exist for it (404, never 403, so ids are not confirmed to strangers).

The work that takes time (reading, chunking and embedding a file) is the ingestor's; adding a
file answers at once with the row `in_progress`.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from ai_gateway.errors import (
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    ServiceUnavailableError,
)
from ai_gateway.rag.blobs import FileBlobs
from ai_gateway.rag.chunking import AUTO, ChunkingStrategy, parse_strategy
from ai_gateway.rag.config import RagConfig
from ai_gateway.rag.extract import UnsupportedFileError, check_supported
from ai_gateway.rag.index import VectorIndex, VectorIndexError
from ai_gateway.rag.index_common import InvalidFilterError
from ai_gateway.rag.ingest import Ingestor
from ai_gateway.rag.records import (
    AttributeValue,
    BatchRecord,
    FileRecord,
    FileStatus,
    Owner,
    Page,
    StoreFileRecord,
    VectorStoreRecord,
    Viewer,
)
from ai_gateway.rag.spec import BatchCreate, VectorStoreCreate, VectorStoreUpdate
from ai_gateway.stores.rag import RagStore

PURPOSES = ("assistants", "user_data")


@asynccontextmanager
async def index_errors() -> AsyncIterator[None]:
    """The index down or failing: a 503 that says so (the message names no secret)."""
    try:
        yield
    except InvalidFilterError as exc:
        raise InvalidRequestError(str(exc), param="filters") from None
    except VectorIndexError as exc:
        raise ServiceUnavailableError(
            f"The vector index is unavailable: {str(exc)[:300]}", code="vector_index_unavailable"
        ) from None


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


class RagService:
    def __init__(
        self,
        config: RagConfig,
        store: RagStore,
        index: Callable[[], Awaitable[VectorIndex]],
        blobs: FileBlobs,
        ingestor: Ingestor,
        *,
        auto: ChunkingStrategy = AUTO,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.index = index
        self._blobs = blobs
        self.ingestor = ingestor
        self._auto = auto
        self._clock = clock

    def now(self) -> int:
        return int(self._clock())

    # Files.

    async def upload(self, filename: str, data: bytes, purpose: str, owner: Owner) -> FileRecord:
        if purpose not in PURPOSES:
            raise InvalidRequestError(
                f"This gateway keeps files for retrieval: purpose must be one of "
                f"{', '.join(PURPOSES)}, not {purpose!r}.",
                param="purpose",
            )
        most = self.config.limits.max_file_bytes
        if len(data) > most:
            raise PayloadTooLargeError(
                f"The file is {len(data)} bytes; this gateway takes files of at most {most} "
                "bytes (rag.limits.max_file_bytes).",
                param="file",
            )
        try:
            check_supported(filename)
        except UnsupportedFileError as exc:
            raise InvalidRequestError(str(exc), param="file", code="unsupported_file") from None
        record = FileRecord(
            id=new_id("file-"),
            filename=filename,
            bytes=len(data),
            purpose=purpose,
            created_at=self.now(),
            owner=owner,
            sha256=hashlib.sha256(data).hexdigest(),
        )
        await self._blobs.save(record.id, data)
        await self.store.add_file(record)
        return record

    async def file(self, file_id: str, viewer: Viewer) -> FileRecord:
        record = await self.store.get_file(file_id, viewer)
        if record is None:
            raise NotFoundError(f"No file found with id '{file_id}'.", param="file_id")
        return record

    async def files(
        self, viewer: Viewer, page: Page, purpose: str | None
    ) -> tuple[list[FileRecord], bool]:
        return await self.store.list_files(viewer, page, purpose)

    async def content(self, file_id: str, viewer: Viewer) -> tuple[FileRecord, bytes]:
        record = await self.file(file_id, viewer)
        data = await self._blobs.read(file_id)
        if data is None:
            raise NotFoundError(f"The content of file '{file_id}' is gone.", param="file_id")
        return record, data

    async def delete_file(self, file_id: str, viewer: Viewer) -> None:
        await self.file(file_id, viewer)
        store_ids = await self.store.delete_file(file_id)
        if store_ids:
            async with index_errors():
                index = await self.index()
                for store_id in store_ids:
                    await index.delete_file(store_id, file_id)
        await self._blobs.delete(file_id)

    # Vector stores.

    async def create_store(
        self, body: VectorStoreCreate, owner: Owner, viewer: Viewer
    ) -> VectorStoreRecord:
        chunking = self._chunking(body.chunking_strategy)
        for file_id in body.file_ids:  # all or nothing: check them before making anything
            await self.file(file_id, viewer)
        now = self.now()
        record = VectorStoreRecord(
            id=new_id("vs_"),
            name=body.name,
            description=body.description,
            metadata=dict(body.metadata or {}),
            created_at=now,
            last_active_at=now,
            expires_after=body.expires_after.model_dump() if body.expires_after else None,
            owner=owner,
        )
        await self.store.add_store(record)
        for file_id in body.file_ids:
            await self._add(record.id, file_id, {}, chunking, None)
        return await self.vector_store(record.id, viewer)

    async def vector_store(self, store_id: str, viewer: Viewer) -> VectorStoreRecord:
        record = await self.store.get_store(store_id, viewer)
        if record is None:
            raise NotFoundError(
                f"No vector store found with id '{store_id}'.", param="vector_store_id"
            )
        return record

    async def usable_store(self, store_id: str, viewer: Viewer) -> VectorStoreRecord:
        """A store to search or add to: not expired (400 vector_store_expired)."""
        record = await self.vector_store(store_id, viewer)
        if record.expired(self.now()):
            raise InvalidRequestError(
                f"Vector store '{store_id}' expired (expires_after: it was not used for "
                f"{record.expires_after and record.expires_after['days']} days). Create a new "
                "one, or set a longer expires_after before it expires.",
                param="vector_store_id",
                code="vector_store_expired",
            )
        return record

    async def vector_stores(
        self, viewer: Viewer, page: Page
    ) -> tuple[list[VectorStoreRecord], bool]:
        return await self.store.list_stores(viewer, page)

    async def update_store(
        self, store_id: str, body: VectorStoreUpdate, viewer: Viewer
    ) -> VectorStoreRecord:
        record = await self.vector_store(store_id, viewer)
        sent = body.model_fields_set
        changes: dict[str, Any] = {"last_active_at": self.now()}
        if "name" in sent:
            changes["name"] = body.name
        if "metadata" in sent:
            changes["metadata"] = dict(body.metadata or {})
        if "expires_after" in sent:
            changes["expires_after"] = (
                body.expires_after.model_dump() if body.expires_after else None
            )
        await self.store.update_store(replace(record, **changes))
        return await self.vector_store(store_id, viewer)

    async def delete_store(self, store_id: str, viewer: Viewer) -> None:
        await self.vector_store(store_id, viewer)
        async with index_errors():  # the passages first: a failure leaves the store whole
            await (await self.index()).delete_store(store_id)
        await self.store.delete_store(store_id)

    # Files in a vector store.

    async def add_file(
        self,
        store_id: str,
        file_id: str,
        attributes: dict[str, AttributeValue] | None,
        chunking: dict[str, Any] | None,
        viewer: Viewer,
    ) -> StoreFileRecord:
        await self.usable_store(store_id, viewer)
        await self.file(file_id, viewer)
        return await self._add(store_id, file_id, attributes or {}, self._chunking(chunking), None)

    async def _add(
        self,
        store_id: str,
        file_id: str,
        attributes: dict[str, AttributeValue],
        chunking: ChunkingStrategy,
        batch_id: str | None,
    ) -> StoreFileRecord:
        most = self.config.limits.max_files_per_store
        if await self.store.count_store_files(store_id) >= most:
            existing = await self.store.get_store_file(store_id, file_id)
            if existing is not None:
                return existing
            raise InvalidRequestError(
                f"Vector store '{store_id}' holds {most} files, the most this gateway allows "
                "(rag.limits.max_files_per_store).",
                param="file_id",
                code="too_many_files",
            )
        row = StoreFileRecord(
            store_id=store_id,
            file_id=file_id,
            status="in_progress",
            created_at=self.now(),
            chunking=chunking.view(),
            attributes=attributes,
            batch_id=batch_id,
        )
        row, added = await self.store.add_store_file(row)
        if added:
            self.ingestor.submit(store_id, file_id)
            await self.store.touch_store(store_id, self.now())
        return row

    def _chunking(self, raw: dict[str, Any] | None) -> ChunkingStrategy:
        try:
            return parse_strategy(raw, self._auto)
        except ValueError as exc:
            raise InvalidRequestError(str(exc), param="chunking_strategy") from None

    async def store_file(self, store_id: str, file_id: str, viewer: Viewer) -> StoreFileRecord:
        await self.vector_store(store_id, viewer)
        row = await self.store.get_store_file(store_id, file_id)
        if row is None:
            raise NotFoundError(
                f"No file '{file_id}' in vector store '{store_id}'.", param="file_id"
            )
        return row

    async def store_files(
        self,
        store_id: str,
        viewer: Viewer,
        page: Page,
        status: FileStatus | None,
        batch_id: str | None = None,
    ) -> tuple[list[StoreFileRecord], bool]:
        await self.vector_store(store_id, viewer)
        if batch_id is not None:
            await self.batch(store_id, batch_id, viewer)
        return await self.store.list_store_files(store_id, page, status, batch_id)

    async def update_store_file(
        self,
        store_id: str,
        file_id: str,
        attributes: dict[str, AttributeValue],
        viewer: Viewer,
    ) -> StoreFileRecord:
        await self.store_file(store_id, file_id, viewer)
        row = await self.store.update_attributes(store_id, file_id, attributes)
        if row is None:
            raise NotFoundError(
                f"No file '{file_id}' in vector store '{store_id}'.", param="file_id"
            )
        async with index_errors():
            await (await self.index()).set_attributes(store_id, file_id, attributes)
        return row

    async def delete_store_file(self, store_id: str, file_id: str, viewer: Viewer) -> None:
        await self.store_file(store_id, file_id, viewer)
        async with index_errors():  # the passages first: a failure leaves the file in place
            await (await self.index()).delete_file(store_id, file_id)
        await self.store.delete_store_file(store_id, file_id)

    # File batches.

    async def create_batch(self, store_id: str, body: BatchCreate, viewer: Viewer) -> BatchRecord:
        await self.usable_store(store_id, viewer)
        if (body.file_ids is None) == (body.files is None):
            raise InvalidRequestError(
                "Give either 'file_ids' or 'files' (each with its own attributes).",
                param="file_ids",
            )
        if body.files is not None and (body.attributes or body.chunking_strategy):
            raise InvalidRequestError(
                "With 'files', give attributes and chunking_strategy for each file, not for "
                "the batch.",
                param="files",
            )
        wanted = [
            (f.file_id, f.attributes or {}, self._chunking(f.chunking_strategy))
            for f in body.files or ()
        ] or [
            (file_id, body.attributes or {}, self._chunking(body.chunking_strategy))
            for file_id in body.file_ids or ()
        ]
        for file_id, _, _ in wanted:
            await self.file(file_id, viewer)
        batch = BatchRecord(id=new_id("vsfb_"), store_id=store_id, created_at=self.now())
        await self.store.add_batch(batch)
        for file_id, attributes, chunking in wanted:
            await self._add(store_id, file_id, attributes, chunking, batch.id)
        return await self.batch(store_id, batch.id, viewer)

    async def batch(self, store_id: str, batch_id: str, viewer: Viewer) -> BatchRecord:
        await self.vector_store(store_id, viewer)
        record = await self.store.get_batch(store_id, batch_id)
        if record is None:
            raise NotFoundError(
                f"No file batch '{batch_id}' in vector store '{store_id}'.", param="batch_id"
            )
        return record

    async def cancel_batch(self, store_id: str, batch_id: str, viewer: Viewer) -> BatchRecord:
        await self.batch(store_id, batch_id, viewer)
        record = await self.store.cancel_batch(store_id, batch_id)
        if record is None:
            raise NotFoundError(
                f"No file batch '{batch_id}' in vector store '{store_id}'.", param="batch_id"
            )
        return record
