"""The SQL of the RAG store, and its rows, for both dialects (see migration 9).

Every query is built with a `Binder`, which numbers the bind parameters as it collects their
values, so that optional conditions (a viewer's scopes, a purpose, a cursor) add parameters
without counting by hand. Times are Unix seconds in both dialects; JSON is text in both.

Who sees what (`visible`) is the SQL form of `Viewer.sees`: every row for `viewer.all`, else the
rows owned by `anyone` and those whose owner is the viewer's key, user or team (a scope the
viewer does not have matches nothing). Lists (`paged`) are in `seq` order; their cursors are
item ids, and an id that is not there gives an empty page.
"""

# ruff: noqa: S608 -- SQL here is assembled from constants only; every value is a bind parameter.

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, get_args

from ai_gateway.rag.records import (
    BatchRecord,
    FileCounts,
    FileRecord,
    FileStatus,
    LastError,
    Owner,
    Page,
    StoreFileRecord,
    VectorStoreRecord,
    Viewer,
)
from ai_gateway.stores.analytics_queries import Dialect

FILE_COLUMNS = (
    *("id", "filename", "bytes", "purpose", "created_at", "owner_kind", "owner_value"),
    "sha256",
)
STORE_COLUMNS = (
    *("id", "name", "description", "metadata", "created_at", "last_active_at"),
    *("expires_after", "owner_kind", "owner_value"),
)
STORE_FILE_COLUMNS = (
    *("store_id", "file_id", "status", "created_at", "chunking", "attributes"),
    *("last_error_code", "last_error_message", "usage_bytes", "chunks", "batch_id"),
)
BATCH_COLUMNS = ("id", "store_id", "created_at", "cancelled")
STATUSES: tuple[FileStatus, ...] = get_args(FileStatus)

Query = tuple[str, list[Any]]


class Binder:
    """Collects a query's parameter values; `bind(value)` is the placeholder for the next."""

    def __init__(self, d: Dialect) -> None:
        self._d = d
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return self._d.p(len(self.values))

    def many(self, values: Iterable[Any]) -> str:
        return ", ".join(self(v) for v in values)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _select(columns: Sequence[str], table: str) -> str:
    return f"SELECT {', '.join(columns)} FROM {table}"


def _insert(d: Dialect, table: str, values: Sequence[Any], columns: Sequence[str]) -> Query:
    b = Binder(d)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({b.many(values)})", b.values


def visible(viewer: Viewer, bind: Binder) -> str:
    if viewer.all:
        return "1 = 1"
    scopes = [
        f"(owner_kind = '{kind}' AND owner_value = {bind(value)})"
        for kind, value in (("key", viewer.key), ("user", viewer.user), ("team", viewer.team))
        if value is not None
    ]
    return "(" + " OR ".join(["owner_kind = 'anyone'", *scopes]) + ")"


def paged(base: str, conditions: list[str], page: Page, bind: Binder, seq_of: str) -> Query:
    """`base` (a SELECT ... FROM) with `conditions` and the page's cursors, in page order, one
    row more than the limit (to tell whether there are more). `seq_of` is the SQL of the seq of
    the item whose id is `{}` (a placeholder). A `before` page is read backwards from its cursor
    (the nearest items first): `page_of` puts it back in order."""
    newest_first = page.order == "desc"
    where = list(conditions)
    if page.after is not None:
        where.append(f"seq {'<' if newest_first else '>'} {seq_of.format(bind(page.after))}")
    if page.before is not None:
        where.append(f"seq {'>' if newest_first else '<'} {seq_of.format(bind(page.before))}")
    descending = newest_first != _backwards(page)
    sql = (
        f"{base} WHERE {' AND '.join(where) or '1 = 1'} "
        f"ORDER BY seq {'DESC' if descending else 'ASC'} LIMIT {bind(max(page.limit, 0) + 1)}"
    )
    return sql, bind.values


def _backwards(page: Page) -> bool:
    return page.before is not None and page.after is None


def page_of(rows: Sequence[Any], page: Page) -> tuple[list[Any], bool]:
    """The rows of a `paged` query as a page, and whether there are more."""
    items = list(rows[: max(page.limit, 0)])
    if _backwards(page):
        items.reverse()
    return items, len(rows) > len(items)


# --- files -------------------------------------------------------------------------------------


def insert_file(d: Dialect, r: FileRecord) -> Query:
    values = (r.id, r.filename, r.bytes, r.purpose, r.created_at, r.owner.kind, r.owner.value)
    return _insert(d, "files", (*values, r.sha256), FILE_COLUMNS)


def get_file(d: Dialect, file_id: str, viewer: Viewer) -> Query:
    b = Binder(d)
    sql = f"{_select(FILE_COLUMNS, 'files')} WHERE id = {b(file_id)} AND {visible(viewer, b)}"
    return sql, b.values


def list_files(d: Dialect, viewer: Viewer, page: Page, purpose: str | None) -> Query:
    b = Binder(d)
    where = [visible(viewer, b)]
    if purpose is not None:
        where.append(f"purpose = {b(purpose)}")
    seq_of = "(SELECT f.seq FROM files f WHERE f.id = {})"
    return paged(_select(FILE_COLUMNS, "files"), where, page, b, seq_of)


def file_from_row(row: Sequence[Any]) -> FileRecord:
    file_id, filename, size, purpose, created_at, kind, value, sha256 = row
    owner = Owner(kind, value)
    return FileRecord(file_id, filename, int(size), purpose, int(created_at), owner, sha256)


# --- vector stores -----------------------------------------------------------------------------


def insert_store(d: Dialect, r: VectorStoreRecord) -> Query:
    values = (r.id, r.name, r.description, _dumps(r.metadata), r.created_at, r.last_active_at)
    expires = None if r.expires_after is None else _dumps(r.expires_after)
    return _insert(
        d, "vector_stores", (*values, expires, r.owner.kind, r.owner.value), STORE_COLUMNS
    )


def update_store(d: Dialect, r: VectorStoreRecord) -> Query:
    b = Binder(d)
    expires = None if r.expires_after is None else _dumps(r.expires_after)
    sql = (
        f"UPDATE vector_stores SET name = {b(r.name)}, description = {b(r.description)}, "
        f"metadata = {b(_dumps(r.metadata))}, expires_after = {b(expires)}, "
        f"last_active_at = {b(r.last_active_at)} WHERE id = {b(r.id)}"
    )
    return sql, b.values


def touch_store(d: Dialect, store_id: str, at: int) -> Query:
    b = Binder(d)
    return f"UPDATE vector_stores SET last_active_at = {b(at)} WHERE id = {b(store_id)}", b.values


def get_stores(d: Dialect, store_ids: Sequence[str], viewer: Viewer) -> Query:
    b = Binder(d)
    where = f"id IN ({b.many(store_ids)}) AND {visible(viewer, b)}"
    return f"{_select(STORE_COLUMNS, 'vector_stores')} WHERE {where}", b.values


def list_stores(d: Dialect, viewer: Viewer, page: Page) -> Query:
    b = Binder(d)
    seq_of = "(SELECT s.seq FROM vector_stores s WHERE s.id = {})"
    return paged(_select(STORE_COLUMNS, "vector_stores"), [visible(viewer, b)], page, b, seq_of)


def store_counts(d: Dialect, store_ids: Sequence[str]) -> Query:
    """(store id, status, files, their usage bytes) for each status the stores' files have."""
    b = Binder(d)
    sql = (
        "SELECT store_id, status, count(*), COALESCE(sum(usage_bytes), 0) "
        f"FROM vector_store_files WHERE store_id IN ({b.many(store_ids)}) "
        "GROUP BY store_id, status"
    )
    return sql, b.values


def delete_store(d: Dialect, store_id: str) -> list[Query]:
    """The store's files, its batches, then the store itself (the last one's count tells)."""
    return [
        (f"DELETE FROM vector_store_files WHERE store_id = {d.p(1)}", [store_id]),
        (f"DELETE FROM vector_store_file_batches WHERE store_id = {d.p(1)}", [store_id]),
        (f"DELETE FROM vector_stores WHERE id = {d.p(1)}", [store_id]),
    ]


def _counts(rows: Iterable[Sequence[Any]]) -> FileCounts:
    """FileCounts from (status, count) rows."""
    found = {status: int(n) for status, n in rows if status in STATUSES}
    return FileCounts(**found)


def stores_from_rows(
    rows: Iterable[Sequence[Any]], counts: Iterable[Sequence[Any]]
) -> list[VectorStoreRecord]:
    """Store rows, with the `store_counts` rows of their files."""
    by_store: dict[str, list[tuple[str, int]]] = {}
    usage: dict[str, int] = {}
    for store_id, status, n, size in counts:
        by_store.setdefault(store_id, []).append((status, n))
        usage[store_id] = usage.get(store_id, 0) + int(size)
    stores = []
    for row in rows:
        store_id, name, description, metadata, created_at, active, expires, kind, value = row
        stores.append(
            VectorStoreRecord(
                id=store_id,
                name=name,
                description=description,
                metadata=json.loads(metadata),
                created_at=int(created_at),
                last_active_at=int(active),
                expires_after=None if expires is None else json.loads(expires),
                owner=Owner(kind, value),
                file_counts=_counts(by_store.get(store_id, [])),
                usage_bytes=usage.get(store_id, 0),
            )
        )
    return stores


# --- files in a vector store -------------------------------------------------------------------


def insert_store_file(d: Dialect, r: StoreFileRecord) -> Query:
    """Nothing when the file is in the store already (the statement's count tells)."""
    error = r.last_error
    values = (
        *(r.store_id, r.file_id, r.status, r.created_at, _dumps(r.chunking), _dumps(r.attributes)),
        *(error.code if error else None, error.message if error else None),
        *(r.usage_bytes, r.chunks, r.batch_id),
    )
    sql, params = _insert(d, "vector_store_files", values, STORE_FILE_COLUMNS)
    return f"{sql} ON CONFLICT (store_id, file_id) DO NOTHING", params


def get_store_file(d: Dialect, store_id: str, file_id: str) -> Query:
    where = f"store_id = {d.p(1)} AND file_id = {d.p(2)}"
    return f"{_select(STORE_FILE_COLUMNS, 'vector_store_files')} WHERE {where}", [store_id, file_id]


def delete_store_file(d: Dialect, store_id: str, file_id: str) -> Query:
    where = f"store_id = {d.p(1)} AND file_id = {d.p(2)}"
    return f"DELETE FROM vector_store_files WHERE {where}", [store_id, file_id]


def count_store_files(d: Dialect, store_id: str) -> Query:
    return f"SELECT count(*) FROM vector_store_files WHERE store_id = {d.p(1)}", [store_id]


def list_store_files(
    d: Dialect, store_id: str, page: Page, status: FileStatus | None, batch_id: str | None
) -> Query:
    b = Binder(d)
    store = b(store_id)
    where = [f"store_id = {store}"]
    if status is not None:
        where.append(f"status = {b(status)}")
    if batch_id is not None:
        where.append(f"batch_id = {b(batch_id)}")
    seq_of = (
        f"(SELECT c.seq FROM vector_store_files c WHERE c.store_id = {store} AND c.file_id = {{}})"
    )
    return paged(_select(STORE_FILE_COLUMNS, "vector_store_files"), where, page, b, seq_of)


def finish_store_file(
    d: Dialect,
    store_id: str,
    file_id: str,
    status: FileStatus,
    last_error: LastError | None,
    usage_bytes: int,
    chunks: int,
) -> Query:
    b = Binder(d)
    code, message = (last_error.code, last_error.message) if last_error else (None, None)
    sql = (
        f"UPDATE vector_store_files SET status = {b(status)}, last_error_code = {b(code)}, "
        f"last_error_message = {b(message)}, usage_bytes = {b(usage_bytes)}, "
        f"chunks = {b(chunks)} WHERE store_id = {b(store_id)} AND file_id = {b(file_id)} "
        "AND status = 'in_progress'"
    )
    return sql, b.values


def update_attributes(d: Dialect, store_id: str, file_id: str, attributes: dict[str, Any]) -> Query:
    """Returns the row as changed."""
    b = Binder(d)
    sql = (
        f"UPDATE vector_store_files SET attributes = {b(_dumps(attributes))} "
        f"WHERE store_id = {b(store_id)} AND file_id = {b(file_id)} "
        f"RETURNING {', '.join(STORE_FILE_COLUMNS)}"
    )
    return sql, b.values


def pending(d: Dialect, limit: int) -> Query:
    return (
        f"{_select(STORE_FILE_COLUMNS, 'vector_store_files')} WHERE status = 'in_progress' "
        f"ORDER BY seq LIMIT {d.p(1)}",
        [max(limit, 0)],
    )


def delete_file(d: Dialect, file_id: str) -> list[Query]:
    """The file's rows in every store (returning their store ids), then the file."""
    return [
        (f"DELETE FROM vector_store_files WHERE file_id = {d.p(1)} RETURNING store_id", [file_id]),
        (f"DELETE FROM files WHERE id = {d.p(1)}", [file_id]),
    ]


def store_file_from_row(row: Sequence[Any]) -> StoreFileRecord:
    store_id, file_id, status, created_at, chunking, attributes, code, message = row[:8]
    usage_bytes, chunks, batch_id = row[8:]
    return StoreFileRecord(
        store_id=store_id,
        file_id=file_id,
        status=status,
        created_at=int(created_at),
        chunking=json.loads(chunking),
        attributes=json.loads(attributes),
        last_error=None if code is None else LastError(code, message),
        usage_bytes=int(usage_bytes),
        chunks=int(chunks),
        batch_id=batch_id,
    )


# --- file batches ------------------------------------------------------------------------------


def insert_batch(d: Dialect, r: BatchRecord) -> Query:
    values = (r.id, r.store_id, r.created_at, r.cancelled)
    return _insert(d, "vector_store_file_batches", values, BATCH_COLUMNS)


def get_batch(d: Dialect, store_id: str, batch_id: str) -> Query:
    return (
        f"{_select(BATCH_COLUMNS, 'vector_store_file_batches')} "
        f"WHERE store_id = {d.p(1)} AND id = {d.p(2)}",
        [store_id, batch_id],
    )


def batch_counts(d: Dialect, store_id: str, batch_id: str) -> Query:
    """(status, files) for each status the batch's files have."""
    return (
        "SELECT status, count(*) FROM vector_store_files "
        f"WHERE store_id = {d.p(1)} AND batch_id = {d.p(2)} GROUP BY status",
        [store_id, batch_id],
    )


def cancel_batch(d: Dialect, store_id: str, batch_id: str) -> list[Query]:
    """Mark the batch cancelled (the first one's count tells whether there is one), then its
    files still in progress."""
    mark = (
        "UPDATE vector_store_file_batches SET cancelled = "
        f"{'true' if d.name == 'postgres' else '1'} WHERE store_id = {d.p(1)} AND id = {d.p(2)}"
    )
    files = (
        "UPDATE vector_store_files SET status = 'cancelled' "
        f"WHERE store_id = {d.p(1)} AND batch_id = {d.p(2)} AND status = 'in_progress'"
    )
    return [(mark, [store_id, batch_id]), (files, [store_id, batch_id])]


def batch_from_row(row: Sequence[Any], counts: Iterable[Sequence[Any]]) -> BatchRecord:
    """A batch row with its `batch_counts` rows."""
    batch_id, store_id, created_at, cancelled = row
    return BatchRecord(batch_id, store_id, int(created_at), bool(cancelled), _counts(counts))
