"""The ingestor with a real SQLite store and a real embedded index (Qdrant Edge) in a temporary
folder; only the embedding model is a stand-in (a deterministic bag-of-words vector). What a
user would notice: a file added before a restart is indexed after it, a failure marks the file
`failed` with its reason and stops nothing else, a file deleted while it was indexed leaves no
passages, and a full queue loses nothing."""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ai_gateway.rag.blobs import FileBlobs
from ai_gateway.rag.chunking import AUTO
from ai_gateway.rag.config import RagConfig, RagLimits
from ai_gateway.rag.index import VectorIndex
from ai_gateway.rag.index_edge import EdgeIndex
from ai_gateway.rag.ingest import Ingestor
from ai_gateway.rag.records import (
    ANYONE,
    EVERYONE,
    FileRecord,
    StoreFileRecord,
    VectorStoreRecord,
)
from ai_gateway.stores.rag_sqlite import SQLiteRagStore

SIZE = 16


def bag_of_words(text: str) -> list[float]:
    vector = [0.0] * SIZE
    for word in text.lower().split():
        vector[hashlib.blake2b(word.encode(), digest_size=2).digest()[0] % SIZE] += 1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


class Embedder:
    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls = 0

    async def __call__(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise ConnectionError("embedding upstream unavailable")
        return [bag_of_words(text) for text in texts]


class Parts:
    def __init__(self, tmp_path: Path) -> None:
        self.store = SQLiteRagStore(tmp_path / "gateway.db")
        self.blobs = FileBlobs(tmp_path / "files")
        self.index_path = str(tmp_path / "index")
        self.index: EdgeIndex | None = None

    async def open_index(self) -> VectorIndex:
        if self.index is None:
            self.index = await EdgeIndex.open(self.index_path)
        return self.index

    def ingestor(self, embed: Embedder, **config: object) -> Ingestor:
        rag = RagConfig.model_validate(config)
        return Ingestor(rag, self.store, self.open_index, self.blobs, embed, retry_delay_s=0.01)

    async def add(self, store_id: str, file_id: str, name: str, data: bytes) -> None:
        await self.blobs.save(file_id, data)
        await self.store.add_file(
            FileRecord(file_id, name, len(data), "assistants", 1, ANYONE, "0" * 64)
        )
        if await self.store.get_store(store_id, EVERYONE) is None:
            await self.store.add_store(
                VectorStoreRecord(store_id, None, None, {}, 1, 1, None, ANYONE)
            )
        row = StoreFileRecord(store_id, file_id, "in_progress", 1, AUTO.view())
        await self.store.add_store_file(row)

    async def status(self, store_id: str, file_id: str) -> StoreFileRecord:
        row = await self.store.get_store_file(store_id, file_id)
        assert row is not None
        return row

    async def close(self) -> None:
        if self.index is not None:
            await self.index.aclose()
        await self.store.aclose()


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[Parts]:
    made = Parts(tmp_path)
    await made.store.start()
    yield made
    await made.close()


def file_id(n: int) -> str:
    return f"file-{n:024x}"


async def test_a_file_added_before_a_restart_is_indexed_after_it(parts: Parts) -> None:
    await parts.add("vs_a", file_id(1), "notes.md", b"# Notes\n\nThe lease table needs a holder.")
    ingestor = parts.ingestor(Embedder())  # a new process: nothing was queued in this one
    ingestor.start()
    await asyncio.wait_for(ingestor.drained(), 30)
    row = await parts.status("vs_a", file_id(1))
    assert row.status == "completed"
    assert row.chunks == 1
    assert row.usage_bytes > 0
    index = await parts.open_index()
    hits = await index.search(["vs_a"], bag_of_words("lease table holder"), "lease table", 3)
    assert [h.file_id for h in hits] == [file_id(1)]
    await ingestor.aclose()


async def test_failures_mark_the_file_failed_with_the_reason_and_stop_nothing_else(
    parts: Parts,
) -> None:
    await parts.add("vs_a", file_id(1), "broken.pdf", b"%PDF-1.7\ngarbage that is not a PDF")
    await parts.add("vs_a", file_id(2), "empty.txt", b"   \n")
    await parts.add("vs_a", file_id(3), "long.txt", ("word " * 3000).encode())
    await parts.add("vs_a", file_id(4), "fine.txt", b"All good here.")
    ingestor = parts.ingestor(Embedder(), limits=RagLimits(max_chunks_per_file=2))
    ingestor.start()
    await asyncio.wait_for(ingestor.drained(), 30)
    broken, empty, long, fine = [await parts.status("vs_a", file_id(n)) for n in (1, 2, 3, 4)]
    assert broken.status == "failed"
    assert broken.last_error is not None
    assert broken.last_error.code == "invalid_file"
    assert "PDF" in broken.last_error.message
    assert empty.status == "failed"
    assert empty.last_error is not None
    assert long.status == "failed"
    assert long.last_error is not None
    assert "max_chunks_per_file" in long.last_error.message
    assert fine.status == "completed"
    await ingestor.aclose()


async def test_embedding_is_retried_then_the_file_fails_as_a_server_error(parts: Parts) -> None:
    await parts.add("vs_a", file_id(1), "a.txt", b"first file")
    flaky = Embedder(failures=2)  # fails twice, then works: within the attempts
    ingestor = parts.ingestor(flaky)
    ingestor.start()
    await asyncio.wait_for(ingestor.drained(), 30)
    assert (await parts.status("vs_a", file_id(1))).status == "completed"
    await parts.add("vs_a", file_id(2), "b.txt", b"second file")
    flaky.failures = 10
    ingestor.submit("vs_a", file_id(2))
    await asyncio.wait_for(ingestor.drained(), 30)
    row = await parts.status("vs_a", file_id(2))
    assert row.status == "failed"
    assert row.last_error is not None
    assert row.last_error.code == "server_error"
    assert "unavailable" in row.last_error.message
    await ingestor.aclose()


async def test_a_file_removed_while_it_is_indexed_leaves_no_passages(parts: Parts) -> None:
    await parts.add("vs_a", file_id(1), "a.txt", b"the quick brown fox")
    release = asyncio.Event()

    async def slow(texts: list[str]) -> list[list[float]]:
        await release.wait()
        return [bag_of_words(t) for t in texts]

    rag = RagConfig()
    ingestor = Ingestor(rag, parts.store, parts.open_index, parts.blobs, slow)
    ingestor.start()
    await asyncio.sleep(0.2)  # the job is waiting for its embeddings
    assert await parts.store.delete_store_file("vs_a", file_id(1))
    release.set()
    await asyncio.wait_for(ingestor.drained(), 30)
    index = await parts.open_index()
    assert await index.count("vs_a") == 0
    await ingestor.aclose()


async def test_a_full_queue_loses_nothing(parts: Parts) -> None:
    for n in range(1, 6):
        await parts.add("vs_a", file_id(n), f"{n}.txt", f"file number {n}".encode())
    ingestor = parts.ingestor(Embedder(), queue=1)
    ingestor.start()
    for n in range(1, 6):
        ingestor.submit("vs_a", file_id(n))  # most find the queue full
    await asyncio.wait_for(ingestor.drained(), 30)
    statuses = [(await parts.status("vs_a", file_id(n))).status for n in range(1, 6)]
    assert statuses == ["completed"] * 5
    await ingestor.aclose()
