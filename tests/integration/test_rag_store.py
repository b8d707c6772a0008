"""Both RAG store backends on real databases: SQLite files in a temporary directory, and
PostgreSQL in a throwaway database (each test in its own schema), dropped at the end."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from ai_gateway.rag.records import (
    ANYONE,
    BatchRecord,
    FileCounts,
    FileRecord,
    LastError,
    Owner,
    Page,
    StoreFileRecord,
    VectorStoreRecord,
    Viewer,
)
from ai_gateway.settings import GatewaySettings
from ai_gateway.stores.analytics import StoreUnavailableError
from ai_gateway.stores.analytics_postgres import PostgresAnalyticsStore
from ai_gateway.stores.analytics_sqlite import SQLiteAnalyticsStore
from ai_gateway.stores.factory import open_rag_store
from ai_gateway.stores.migrations import check
from ai_gateway.stores.migrations import postgres as pg_migrations
from ai_gateway.stores.migrations import sqlite as sqlite_migrations
from ai_gateway.stores.rag_postgres import PostgresRagStore
from ai_gateway.stores.rag_sqlite import SQLiteRagStore
from analytics_support import throwaway_database

pytestmark = pytest.mark.integration

Store = SQLiteRagStore | PostgresRagStore
ALL = Viewer(all=True)
ALICE = Owner("user", "alice")
T = 1_750_000_000
CHUNKING = {"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}}


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    with throwaway_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def rag_store(request: pytest.FixtureRequest, backend: str, tmp_path: Path, tag: str) -> Store:
    if backend == "sqlite":
        return SQLiteRagStore(tmp_path / f"{tag}.db")
    return PostgresRagStore(request.getfixturevalue("pg_database"), schema=f"t_{tag}")


@pytest.fixture
async def store(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path
) -> AsyncIterator[Store]:
    started = rag_store(request, backend, tmp_path, uuid.uuid4().hex[:12])
    await started.start()
    yield started
    await started.aclose()


def a_file(file_id: str, owner: Owner = ANYONE, purpose: str = "assistants") -> FileRecord:
    return FileRecord(file_id, f"{file_id}.txt", 12, purpose, T, owner, "ab" * 32)


def a_store(store_id: str, owner: Owner = ANYONE, **fields: object) -> VectorStoreRecord:
    values: dict[str, object] = {
        "name": f"store {store_id}",
        "description": None,
        "metadata": {"z": "1", "a": "Zoë"},
        "created_at": T,
        "last_active_at": T,
        "expires_after": None,
        "owner": owner,
    }
    values.update(fields)
    return VectorStoreRecord(store_id, **values)  # type: ignore[arg-type]


def in_store(store_id: str, file_id: str, batch_id: str | None = None) -> StoreFileRecord:
    return StoreFileRecord(
        store_id, file_id, "in_progress", T, CHUNKING, {"lang": "en", "n": 2.5, "ok": True},
        batch_id=batch_id,
    )  # fmt: skip


# --- migrations and lifecycle --------------------------------------------------------------------


def test_migration_9_adds_the_rag_tables_in_both_dialects() -> None:
    for migrations in (sqlite_migrations.MIGRATIONS, pg_migrations.MIGRATIONS):
        check(migrations)
        rag = migrations[8]
        assert rag.version == 9
        text = " ".join(rag.statements)
        for table in ("files", "vector_stores", "vector_store_files", "vector_store_file_batches"):
            assert f"CREATE TABLE {table} (" in text


async def test_one_migration_history_with_the_analytics_store(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:12]
    rag = rag_store(request, backend, tmp_path, tag)
    with capture_logs() as logs:
        await rag.start()
    assert [e["versions"] for e in logs if e["event"] == "rag_schema_migrated"] == [
        list(range(1, len(sqlite_migrations.MIGRATIONS) + 1))
    ]
    analytics: SQLiteAnalyticsStore | PostgresAnalyticsStore
    if backend == "sqlite":
        analytics = SQLiteAnalyticsStore(tmp_path / f"{tag}.db")
    else:
        analytics = PostgresAnalyticsStore(
            request.getfixturevalue("pg_database"), schema=f"t_{tag}"
        )
    with capture_logs() as logs:
        await analytics.start()
    assert not [e for e in logs if e["event"].endswith("_schema_migrated")]
    await analytics.aclose()
    await rag.aclose()


async def test_a_restarted_store_keeps_everything(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:12]
    first = rag_store(request, backend, tmp_path, tag)
    await first.add_file(a_file("file-1"))
    await first.add_store(a_store("vs_1"))
    await first.add_store_file(in_store("vs_1", "file-1"))
    await first.aclose()
    second = rag_store(request, backend, tmp_path, tag)
    assert await second.get_file("file-1", ALL) == a_file("file-1")
    assert [r.file_id for r in await second.pending(10)] == ["file-1"]
    await second.aclose()


def test_the_factory_picks_the_backend(tmp_path: Path) -> None:
    sqlite = open_rag_store(GatewaySettings(data_dir=str(tmp_path / "data")))
    assert isinstance(sqlite, SQLiteRagStore)
    assert sqlite.path == tmp_path / "data" / "analytics.db"
    url = SecretStr("postgresql://gateway:pw@db.internal:5432/analytics")
    assert isinstance(open_rag_store(GatewaySettings(database_url=url)), PostgresRagStore)


async def test_an_unusable_sqlite_path_is_unavailable(tmp_path: Path) -> None:
    store = SQLiteRagStore(tmp_path / "missing" / "dir" / "a.db")
    with pytest.raises(StoreUnavailableError, match="SQLite rag store"):
        await store.start()
    await store.aclose()
    with pytest.raises(StoreUnavailableError, match="closed"):
        await store.get_file("file-1", ALL)


async def test_an_unreachable_postgres_is_unavailable_without_its_password() -> None:
    store = PostgresRagStore("postgresql://gw:hunter2-secret@127.0.0.1:9/db", connect_timeout_s=2)
    with pytest.raises(StoreUnavailableError) as caught:
        await store.start()
    assert "PostgreSQL rag store unavailable" in str(caught.value)
    assert "hunter2-secret" not in str(caught.value)
    with pytest.raises(StoreUnavailableError):  # later calls try again, and fail the same way
        await store.list_files(ALL, Page())
    await store.aclose()


# --- who sees what -------------------------------------------------------------------------------

OWNERS = [
    ANYONE,
    Owner("master", ""),
    Owner("key", "k1"),
    Owner("user", "alice"),
    Owner("team", "core"),
    Owner("user", "k1"),  # a user named like a key: the kind must match too
]
VIEWERS = [
    ALL,
    Viewer(),
    Viewer(key="k1"),
    Viewer(key="k2", user="alice"),
    Viewer(key="k3", user="bob", team="core"),
    Viewer(user=""),  # an empty value is still a value: it sees only "anyone"'s records here
]


async def test_reads_show_each_viewer_what_viewer_sees_would(store: Store) -> None:
    for i, owner in enumerate(OWNERS):
        await store.add_file(a_file(f"file-{i}", owner))
        await store.add_store(a_store(f"vs_{i}", owner))
    ids = [f"vs_{i}" for i in range(len(OWNERS))]
    for viewer in VIEWERS:
        expected = [i for i, owner in enumerate(OWNERS) if viewer.sees(owner)]
        files, _ = await store.list_files(viewer, Page(order="asc"))
        assert [f.id for f in files] == [f"file-{i}" for i in expected], viewer
        stores, _ = await store.list_stores(viewer, Page(order="asc"))
        assert [s.id for s in stores] == [f"vs_{i}" for i in expected], viewer
        assert sorted(s.id for s in await store.get_stores(ids, viewer)) == sorted(
            f"vs_{i}" for i in expected
        )
        for i in range(len(OWNERS)):
            assert (await store.get_file(f"file-{i}", viewer) is not None) == (i in expected)
            assert (await store.get_store(f"vs_{i}", viewer) is not None) == (i in expected)


# --- pages ---------------------------------------------------------------------------------------


async def test_files_page_in_creation_order_with_cursors(store: Store) -> None:
    for i in range(5):  # all made in the same second: the order is the order of creation
        await store.add_file(a_file(f"file-{i}", purpose="batch" if i == 2 else "assistants"))

    async def ids(page: Page, purpose: str | None = None) -> tuple[list[str], bool]:
        files, more = await store.list_files(ALL, page, purpose)
        return [f.id for f in files], more

    assert await ids(Page(limit=2)) == (["file-4", "file-3"], True)
    assert await ids(Page(limit=2, after="file-3")) == (["file-2", "file-1"], True)
    assert await ids(Page(limit=2, after="file-1")) == (["file-0"], False)
    assert await ids(Page(limit=2, order="asc")) == (["file-0", "file-1"], True)
    assert await ids(Page(limit=10, order="asc", after="file-2")) == (["file-3", "file-4"], False)
    assert await ids(Page(limit=2, before="file-1")) == (["file-3", "file-2"], True)
    assert await ids(Page(limit=2, order="asc", before="file-3")) == (["file-1", "file-2"], True)
    assert await ids(Page(limit=5, before="file-2")) == (["file-4", "file-3"], False)
    assert await ids(Page(after="file-4", before="file-1")) == (["file-3", "file-2"], False)
    assert await ids(Page(after="file-nope")) == ([], False)
    assert await ids(Page(before="file-nope")) == ([], False)
    assert await ids(Page(), purpose="batch") == (["file-2"], False)
    assert await ids(Page(limit=1), purpose="assistants") == (["file-4"], True)


async def test_store_files_page_by_status_and_batch(store: Store) -> None:
    await store.add_store(a_store("vs_1"))
    await store.add_store(a_store("vs_2"))
    await store.add_batch(BatchRecord("vsfb_1", "vs_1", T))
    for i in range(4):
        await store.add_store_file(in_store("vs_1", f"file-{i}", "vsfb_1" if i % 2 else None))
    await store.add_store_file(in_store("vs_2", "file-0"))
    assert await store.finish_store_file("vs_1", "file-1", "completed", usage_bytes=10, chunks=1)

    async def ids(page: Page, **filters: str) -> tuple[list[str], bool]:
        rows, more = await store.list_store_files("vs_1", page, **filters)  # type: ignore[arg-type]
        return [r.file_id for r in rows], more

    assert await ids(Page()) == (["file-3", "file-2", "file-1", "file-0"], False)
    assert await ids(Page(limit=1, after="file-3")) == (["file-2"], True)
    assert await ids(Page(limit=1, before="file-0")) == (["file-1"], True)
    assert await ids(Page(after="file-9")) == ([], False)
    assert await ids(Page(), status="in_progress") == (["file-3", "file-2", "file-0"], False)
    assert await ids(Page(), batch_id="vsfb_1") == (["file-3", "file-1"], False)
    assert await ids(Page(), batch_id="vsfb_1", status="completed") == (["file-1"], False)
    assert await store.count_store_files("vs_1") == 4
    assert await store.count_store_files("vs_9") == 0


# --- vector stores -------------------------------------------------------------------------------


async def test_stores_come_back_with_their_counts_and_usage(store: Store) -> None:
    expires = {"anchor": "last_active_at", "days": 7}
    made = a_store("vs_1", ALICE, description="docs", expires_after=expires)
    await store.add_store(made)
    await store.add_store(a_store("vs_2"))
    for i in range(4):
        await store.add_store_file(in_store("vs_1", f"file-{i}"))
    await store.finish_store_file("vs_1", "file-0", "completed", usage_bytes=100, chunks=2)
    await store.finish_store_file("vs_1", "file-1", "completed", usage_bytes=50, chunks=1)
    error = LastError("unsupported_file", "not a text file")
    await store.finish_store_file("vs_1", "file-2", "failed", last_error=error)
    got = await store.get_store("vs_1", ALL)
    assert got is not None
    assert got.file_counts == FileCounts(in_progress=1, completed=2, failed=1)
    assert got.usage_bytes == 150
    assert (got.name, got.description, got.expires_after, got.owner) == (
        "store vs_1", "docs", expires, ALICE,
    )  # fmt: skip
    assert list(got.metadata.items()) == [("z", "1"), ("a", "Zoë")]  # the order given
    listed, more = await store.list_stores(ALL, Page())
    assert [(s.id, s.file_counts.total, s.usage_bytes) for s in listed] == [
        ("vs_2", 0, 0), ("vs_1", 4, 150),
    ]  # fmt: skip
    assert not more
    assert {s.id: s.file_counts for s in await store.get_stores(["vs_1", "vs_2", "vs_9"], ALL)} == {
        "vs_1": got.file_counts,
        "vs_2": FileCounts(),
    }
    assert await store.get_stores([], ALL) == []


async def test_update_and_touch_change_what_they_name(store: Store) -> None:
    await store.add_store(a_store("vs_1"))
    changed = a_store(
        "vs_1", name=None, description="new", metadata={"k": "v"},
        expires_after={"anchor": "last_active_at", "days": 1}, last_active_at=T + 5,
        created_at=T + 99, owner=ALICE,  # neither of these is saved
    )  # fmt: skip
    await store.update_store(changed)
    got = await store.get_store("vs_1", ALL)
    assert got == a_store(
        "vs_1", name=None, description="new", metadata={"k": "v"},
        expires_after={"anchor": "last_active_at", "days": 1}, last_active_at=T + 5,
    )  # fmt: skip
    await store.touch_store("vs_1", T + 60)
    touched = await store.get_store("vs_1", ALL)
    assert touched is not None
    assert touched.last_active_at == T + 60
    assert touched.expires_at == T + 60 + 86_400


async def test_deleting_a_store_takes_its_files_and_batches(store: Store) -> None:
    for store_id in ("vs_1", "vs_2"):
        await store.add_store(a_store(store_id))
        await store.add_batch(BatchRecord(f"vsfb_{store_id}", store_id, T))
        await store.add_store_file(in_store(store_id, "file-1", f"vsfb_{store_id}"))
    assert await store.delete_store("vs_1")
    assert not await store.delete_store("vs_1")
    assert await store.get_store("vs_1", ALL) is None
    assert await store.get_store_file("vs_1", "file-1") is None
    assert await store.get_batch("vs_1", "vsfb_vs_1") is None
    assert [r.store_id for r in await store.pending(10)] == ["vs_2"]
    assert await store.get_batch("vs_2", "vsfb_vs_2") is not None


# --- files in a store ----------------------------------------------------------------------------


async def test_adding_a_file_twice_gives_back_the_first_row(store: Store) -> None:
    first = in_store("vs_1", "file-1")
    assert await store.add_store_file(first) == (first, True)
    assert await store.get_store_file("vs_1", "file-1") == first
    await store.finish_store_file("vs_1", "file-1", "completed", usage_bytes=7, chunks=1)
    again = StoreFileRecord("vs_1", "file-1", "in_progress", T + 9, {"type": "other"})
    row, added = await store.add_store_file(again)
    assert not added
    assert (row.status, row.created_at, row.chunking, row.usage_bytes) == (
        "completed", T, CHUNKING, 7,
    )  # fmt: skip
    assert row.attributes == {"lang": "en", "n": 2.5, "ok": True}


async def test_concurrent_adds_of_one_file_agree_on_one_row(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:12]
    stores = [rag_store(request, backend, tmp_path, tag) for _ in range(3)]
    await asyncio.gather(*(s.start() for s in stores))
    records = [
        StoreFileRecord("vs_1", "file-1", "in_progress", T + i, CHUNKING, {"i": float(i)})
        for i in range(12)
    ]
    results = await asyncio.gather(
        *(s.add_store_file(r) for s, r in zip(itertools.cycle(stores), records, strict=False))
    )
    assert sum(added for _, added in results) == 1
    winner = next(row for row, added in results if added)
    assert all(row == winner for row, _ in results)
    assert await stores[0].count_store_files("vs_1") == 1
    await asyncio.gather(*(s.aclose() for s in stores))


async def test_finishing_moves_only_rows_in_progress(store: Store) -> None:
    await store.add_store_file(in_store("vs_1", "file-1"))
    error = LastError("server_error", "the embedder failed")
    assert await store.finish_store_file("vs_1", "file-1", "failed", last_error=error)
    assert not await store.finish_store_file("vs_1", "file-1", "completed", usage_bytes=9)
    assert not await store.finish_store_file("vs_1", "file-9", "completed")
    row = await store.get_store_file("vs_1", "file-1")
    assert row is not None
    assert (row.status, row.last_error, row.usage_bytes) == ("failed", error, 0)


async def test_attributes_delete_and_pending(store: Store) -> None:
    for i in range(4):
        await store.add_store_file(in_store(f"vs_{i % 2}", f"file-{i}"))
    await store.finish_store_file("vs_0", "file-2", "completed")
    updated = await store.update_attributes("vs_1", "file-1", {"tag": "x"})
    assert updated is not None
    assert updated.attributes == {"tag": "x"}
    assert updated.status == "in_progress"
    assert await store.update_attributes("vs_1", "file-9", {"tag": "x"}) is None
    assert [(r.store_id, r.file_id) for r in await store.pending(10)] == [
        ("vs_0", "file-0"), ("vs_1", "file-1"), ("vs_1", "file-3"),
    ]  # fmt: skip
    assert [r.file_id for r in await store.pending(1)] == ["file-0"]
    assert await store.delete_store_file("vs_0", "file-0")
    assert not await store.delete_store_file("vs_0", "file-0")
    assert [r.file_id for r in await store.pending(10)] == ["file-1", "file-3"]


async def test_deleting_a_file_removes_it_from_every_store(store: Store) -> None:
    await store.add_file(a_file("file-1"))
    await store.add_file(a_file("file-2"))
    for store_id in ("vs_1", "vs_2"):
        await store.add_store_file(in_store(store_id, "file-1"))
    await store.add_store_file(in_store("vs_1", "file-2"))
    assert sorted(await store.delete_file("file-1")) == ["vs_1", "vs_2"]
    assert await store.get_file("file-1", ALL) is None
    assert await store.get_store_file("vs_2", "file-1") is None
    assert await store.get_file("file-2", ALL) == a_file("file-2")
    assert await store.count_store_files("vs_1") == 1
    assert await store.delete_file("file-1") == []


# --- batches -------------------------------------------------------------------------------------


async def test_cancelling_a_batch_stops_its_files_in_progress(store: Store) -> None:
    await store.add_batch(BatchRecord("vsfb_1", "vs_1", T))
    for i in range(3):
        await store.add_store_file(in_store("vs_1", f"file-{i}", "vsfb_1"))
    await store.add_store_file(in_store("vs_1", "file-other"))
    await store.finish_store_file("vs_1", "file-0", "completed")
    batch = await store.get_batch("vs_1", "vsfb_1")
    assert batch is not None
    assert (batch.status, batch.file_counts) == ("in_progress", FileCounts(2, 1))
    cancelled = await store.cancel_batch("vs_1", "vsfb_1")
    assert cancelled is not None
    assert cancelled.cancelled
    assert (cancelled.status, cancelled.file_counts) == (
        "cancelled", FileCounts(completed=1, cancelled=2),
    )  # fmt: skip
    assert await store.get_batch("vs_1", "vsfb_1") == cancelled
    assert not await store.finish_store_file("vs_1", "file-1", "completed")
    assert [r.file_id for r in await store.pending(10)] == ["file-other"]
    assert await store.cancel_batch("vs_1", "vsfb_9") is None
    assert await store.cancel_batch("vs_2", "vsfb_1") is None  # another store's id
    assert await store.get_batch("vs_2", "vsfb_1") is None
