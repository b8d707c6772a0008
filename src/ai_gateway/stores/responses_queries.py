"""The SQL of the response store, and its rows, for both dialects (see migration 10).

Who sees a response is RAG's rule (`rag_queries.visible`: the master key every row, a caller
those of its key, user or team). A response older than the store's time to live is as good as
gone: every read leaves it out (`since`), and `purge` deletes it.

A conversation is read in one query: a recursive walk from a response back through its
`previous_response_id` links, each step visible to the caller and not expired, at most `limit`
responses, oldest first.
"""

# ruff: noqa: S608 -- SQL here is assembled from constants only; every value is a bind parameter.

from __future__ import annotations

import json
from typing import Any

from ai_gateway.rag.records import Owner, Viewer
from ai_gateway.responses.records import StoredResponse, Turn
from ai_gateway.stores.analytics_queries import Dialect
from ai_gateway.stores.rag_queries import Binder, Query, visible

COLUMNS = (
    *("id", "created_at", "owner_kind", "owner_value", "previous_response_id", "status"),
    *("response", "input_items"),
)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def insert(d: Dialect, r: StoredResponse) -> Query:
    b = Binder(d)
    values = (
        *(r.id, r.created_at, r.owner.kind, r.owner.value, r.previous_response_id, r.status),
        *(_dumps(r.response), _dumps(r.input_items)),
    )
    return f"INSERT INTO responses ({', '.join(COLUMNS)}) VALUES ({b.many(values)})", b.values


def get(d: Dialect, response_id: str, viewer: Viewer, since: int) -> Query:
    b = Binder(d)
    sql = (
        f"SELECT {', '.join(COLUMNS)} FROM responses WHERE id = {b(response_id)} "
        f"AND created_at >= {b(since)} AND {visible(viewer, b)}"
    )
    return sql, b.values


def from_row(row: Any) -> StoredResponse:
    return StoredResponse(
        id=row[0],
        created_at=int(row[1]),
        owner=Owner(row[2], row[3]),
        previous_response_id=row[4],
        status=row[5],
        response=json.loads(row[6]),
        input_items=json.loads(row[7]),
    )


def delete(d: Dialect, response_id: str, viewer: Viewer, since: int) -> Query:
    b = Binder(d)
    sql = (
        f"DELETE FROM responses WHERE id = {b(response_id)} AND created_at >= {b(since)} "
        f"AND {visible(viewer, b)}"
    )
    return sql, b.values


def chain(d: Dialect, response_id: str, viewer: Viewer, since: int, limit: int) -> Query:
    b = Binder(d)
    first = f"id = {b(response_id)} AND created_at >= {b(since)} AND {visible(viewer, b)}"
    step = f"r.created_at >= {b(since)} AND c.depth < {b(limit - 1)} AND {visible(viewer, b)}"
    sql = (
        "WITH RECURSIVE walk(id, previous_response_id, depth) AS ("
        f"SELECT id, previous_response_id, 0 FROM responses WHERE {first} "
        "UNION ALL "
        "SELECT r.id, r.previous_response_id, c.depth + 1 "
        f"FROM responses r JOIN walk c ON r.id = c.previous_response_id WHERE {step}"
        ") "
        "SELECT r.id, r.input_items, r.response FROM walk w JOIN responses r ON r.id = w.id "
        "ORDER BY w.depth DESC"
    )
    return sql, b.values


def turn_from_row(row: Any) -> Turn:
    response = json.loads(row[2])
    output = response.get("output") if isinstance(response, dict) else None
    return Turn(id=row[0], input_items=json.loads(row[1]), output=list(output or ()))


def purge(d: Dialect, before: int) -> Query:
    b = Binder(d)
    return f"DELETE FROM responses WHERE created_at < {b(before)}", b.values
