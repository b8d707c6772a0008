"""Ingestion: the background work that turns a file added to a vector store into indexed
chunks (docs/rag.md).

A file added to a store is a row `in_progress` in the RAG store first; that row is the job, so
a restart loses nothing: at start, the rows still in progress are queued again. Workers (at most
`rag.workers` at once) take jobs from a bounded queue: read the bytes, extract the text and cut
it into chunks (on a thread), embed the chunks in batches through the gateway's own embeddings
path, write the points, then mark the row `completed`. A file that cannot be read (unsupported,
corrupt, no text, too many chunks) is marked `failed` with the reason; so is one whose embedding
or indexing still fails after a few tries (`server_error`). Points are written under ids derived
from (store, file, chunk), so doing a job twice (a restart in the middle, two instances resuming
the same row) changes nothing. A row deleted or cancelled while its job ran keeps no points.

When the queue is full, the row simply waits in the store: the workers look for such rows again
once the queue has drained.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from ai_gateway.observability.logging import get_logger
from ai_gateway.rag.blobs import FileBlobs
from ai_gateway.rag.chunking import ChunkingStrategy, TokenEncoding, chunk_text, o200k
from ai_gateway.rag.config import RagConfig
from ai_gateway.rag.extract import InvalidFileError, UnsupportedFileError, extract_text
from ai_gateway.rag.index import ChunkPoint, VectorIndex
from ai_gateway.rag.records import EVERYONE, ErrorCode, LastError, StoreFileRecord
from ai_gateway.stores.analytics import StoreUnavailableError
from ai_gateway.stores.rag import RagStore

Embed = Callable[[list[str]], Awaitable[list[list[float]]]]
log = get_logger(__name__)
T = TypeVar("T")

ATTEMPTS = 3  # embedding or indexing, before a file is marked failed
RETRY_DELAY_S = 1.0
# Each batch holds the GIL while Edge writes it and embeds its keywords (about 0.3 ms a chunk).
_UPSERT_BATCH = 64


@dataclass(frozen=True, slots=True)
class Job:
    store_id: str
    file_id: str


class FileFailed(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.error = LastError(code, message[:500])


class Ingestor:
    def __init__(
        self,
        config: RagConfig,
        store: RagStore,
        index: Callable[[], Awaitable[VectorIndex]],
        blobs: FileBlobs,
        embed: Embed,
        *,
        retry_delay_s: float = RETRY_DELAY_S,
    ) -> None:
        self._config = config
        self._store = store
        self._index = index
        self._blobs = blobs
        self._embed = embed
        self._retry_delay_s = retry_delay_s
        self._queue: asyncio.Queue[Job] = asyncio.Queue(config.queue)
        self._queued: set[Job] = set()
        self._active: set[Job] = set()
        self._behind = True  # rows may wait in the store: look for them (at start, too)
        self._workers: list[asyncio.Task[None]] = []
        self._idle = asyncio.Event()
        self._running = 0
        self._encoding: TokenEncoding | None = None  # o200k, loaded by the first file

    def start(self) -> None:
        if not self._workers:
            self._workers = [
                asyncio.create_task(self._work(), name=f"rag-ingest-{n}")
                for n in range(self._config.workers)
            ]

    def submit(self, store_id: str, file_id: str) -> None:
        """Queue the row's job (it is in the store already; a full queue leaves it there)."""
        job = Job(store_id, file_id)
        if job in self._queued or job in self._active:
            return
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self._behind = True
            return
        self._queued.add(job)
        self._idle.clear()

    async def drained(self) -> None:
        """Wait until no job is queued or running (for tests and the CLI)."""
        while self._queue.qsize() or self._running or self._behind:
            self._idle.clear()
            await self._idle.wait()

    async def aclose(self) -> None:
        """Stop; jobs under way stay `in_progress` and are done again after a restart."""
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []

    async def _work(self) -> None:
        while True:
            if self._queue.empty():
                if self._behind:
                    await self._resume()
                if self._queue.empty() and not self._running and not self._behind:
                    self._idle.set()
            job = await self._queue.get()
            self._queued.discard(job)
            self._active.add(job)
            self._running += 1
            try:
                await self._run(job)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("rag_ingest_failed", store_id=job.store_id, file_id=job.file_id)
            finally:
                self._active.discard(job)
                self._running -= 1
                if self._queue.empty() and not self._running and not self._behind:
                    self._idle.set()

    async def _resume(self) -> None:
        """Queue the rows still in progress that no job holds."""
        try:
            rows = await self._store.pending(self._config.queue)
        except StoreUnavailableError as exc:
            log.warning("rag_resume_failed", error=str(exc))
            await asyncio.sleep(self._retry_delay_s)
            return
        # With a full page there may be more rows: look again once the queue has drained.
        self._behind = len(rows) >= self._config.queue
        for row in rows:
            self.submit(row.store_id, row.file_id)

    async def _run(self, job: Job) -> None:
        store = self._store
        row = await store.get_store_file(job.store_id, job.file_id)
        if row is None or row.status != "in_progress":
            return
        try:
            chunks, usage = await self._index_file(row)
        except FileFailed as failed:
            log.info(
                "rag_file_failed",
                store_id=row.store_id,
                file_id=row.file_id,
                code=failed.error.code,
            )
            await store.finish_store_file(
                row.store_id, row.file_id, "failed", last_error=failed.error
            )
            await self._forget(row)
            return
        done = await store.finish_store_file(
            row.store_id, row.file_id, "completed", usage_bytes=usage, chunks=chunks
        )
        if not done:  # deleted or cancelled while it ran
            await self._forget(row)

    async def _forget(self, row: StoreFileRecord) -> None:
        index = await self._index()
        await index.delete_file(row.store_id, row.file_id)

    async def _index_file(self, row: StoreFileRecord) -> tuple[int, int]:
        """Index the row's file: (chunks, usage bytes), or FileFailed."""
        record = await self._store.get_file(row.file_id, EVERYONE)
        data = await self._blobs.read(row.file_id)
        if record is None:
            raise FileFailed("invalid_file", "The file was deleted before it could be indexed.")
        if data is None:
            raise FileFailed(
                "server_error",
                "The file's bytes are not under this gateway's rag.files_dir (instances that "
                "share a database must share that folder too).",
            )
        strategy = _strategy(row)
        try:
            texts = await asyncio.to_thread(self._chunks, record.filename, data, strategy)
        except (UnsupportedFileError, InvalidFileError) as exc:
            code: ErrorCode = (
                "unsupported_file" if isinstance(exc, UnsupportedFileError) else ("invalid_file")
            )
            raise FileFailed(code, str(exc)) from None
        if not texts:
            raise FileFailed("invalid_file", "The file holds no text.")
        most = self._config.limits.max_chunks_per_file
        if len(texts) > most:
            raise FileFailed(
                "invalid_file",
                f"The file makes {len(texts)} chunks; at most {most} per file "
                "(rag.limits.max_chunks_per_file). Split it, or use larger chunks.",
            )
        vectors = await self._retried("embedding", lambda: self._embed_all(texts))
        points = [
            ChunkPoint(
                store_id=row.store_id,
                file_id=row.file_id,
                filename=record.filename,
                chunk=n,
                text=text,
                vector=vector,
                attributes=dict(row.attributes),
            )
            for n, (text, vector) in enumerate(zip(texts, vectors, strict=True))
        ]
        await self._retried("indexing", lambda: self._upsert_all(points))
        usage = sum(len(t.encode()) for t in texts) + 4 * len(vectors[0]) * len(vectors)
        return len(points), usage

    def _chunks(self, filename: str, data: bytes, strategy: ChunkingStrategy) -> list[str]:
        """On a worker thread: the file's text in chunks."""
        if self._encoding is None:
            self._encoding = o200k()
        return chunk_text(extract_text(filename, data), strategy, self._encoding)

    async def _upsert_all(self, points: list[ChunkPoint]) -> None:
        index = await self._index()
        for start in range(0, len(points), _UPSERT_BATCH):
            await index.upsert(points[start : start + _UPSERT_BATCH])

    async def _embed_all(self, texts: list[str]) -> list[list[float]]:
        size = self._config.embed_batch
        vectors: list[list[float]] = []
        for start in range(0, len(texts), size):
            vectors.extend(await self._embed(texts[start : start + size]))
        if len(vectors) != len(texts):
            raise ValueError("the embedding model answered with a different number of vectors")
        return vectors

    async def _retried(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return await call()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if attempt == ATTEMPTS:
                    raise FileFailed(
                        "server_error", f"{what} failed {ATTEMPTS} times: {exc}"
                    ) from None
                log.warning("rag_retry", what=what, attempt=attempt, error=str(exc)[:300])
                await asyncio.sleep(self._retry_delay_s * attempt)
        raise AssertionError("unreachable")


def _strategy(row: StoreFileRecord) -> ChunkingStrategy:
    static = row.chunking["static"]
    return ChunkingStrategy(static["max_chunk_size_tokens"], static["chunk_overlap_tokens"])
