"""The prompt store in the analytics SQLite file (`<data_dir>/analytics.db` by default), on its
own connection and worker thread (`SQLiteWorker`), beside the other stores of that file. The
same class keeps the chains, in their own tables (`tables=prompts_queries.CHAINS`)."""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

from ai_gateway.prompts.records import PromptRecord, PromptVersion
from ai_gateway.stores import analytics_queries as aq
from ai_gateway.stores import prompts_queries as q
from ai_gateway.stores.prompts import PromptExistsError, VersionMissingError
from ai_gateway.stores.sqlite_worker import SQLiteWorker, transaction

D = aq.SQLITE


class SQLitePromptStore:
    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_s: float = 5.0,
        tables: q.Tables = q.PROMPTS,
    ) -> None:
        """`tables`: which kind of document this store keeps (prompt templates, chains)."""
        self.path = Path(path)
        self._t = tables
        self._db = SQLiteWorker(self.path, name=tables.kind, busy_timeout_s=busy_timeout_s)

    async def start(self) -> None:
        await self._db.call(lambda conn: None)

    async def aclose(self) -> None:
        await self._db.aclose()

    async def create_prompt(
        self,
        prompt_id: str,
        description: str | None,
        template: dict[str, Any],
        variables: dict[str, Any],
        note: str | None,
        at: datetime,
    ) -> PromptRecord:
        first = PromptVersion(prompt_id, 1, template, variables, at, note)
        row = q.version_values(first, aq.to_micros)

        def work(conn: sqlite3.Connection) -> bool:
            def create() -> bool:
                made = conn.execute(
                    q.insert_prompt_sql(D, self._t), (prompt_id, description, row[-1])
                )
                if not made.rowcount:
                    return False
                conn.execute(q.insert_version_sql(D, self._t), row)
                return True

            return transaction(conn, create)

        if not await self._db.call(work):
            raise PromptExistsError(prompt_id)
        return PromptRecord(prompt_id, description, at, 1, {})

    async def add_version(
        self,
        prompt_id: str,
        template: dict[str, Any],
        variables: dict[str, Any],
        note: str | None,
        at: datetime,
    ) -> PromptVersion | None:
        def work(conn: sqlite3.Connection) -> int | None:
            def add() -> int | None:
                taken = conn.execute(q.next_version_sql(D, self._t), (prompt_id,)).fetchone()
                if taken is None:
                    return None
                number = int(taken[0])
                version = PromptVersion(prompt_id, number, template, variables, at, note)
                conn.execute(
                    q.insert_version_sql(D, self._t), q.version_values(version, aq.to_micros)
                )
                return number

            return transaction(conn, add)

        number = await self._db.call(work)
        if number is None:
            return None
        return PromptVersion(prompt_id, number, template, variables, at, note)

    async def get_prompt(self, prompt_id: str) -> PromptRecord | None:
        def work(conn: sqlite3.Connection) -> tuple[list[Any], list[Any]]:
            rows = conn.execute(q.get_prompt_sql(D, self._t), (prompt_id,)).fetchall()
            labels = conn.execute(q.labels_sql(D, self._t), (prompt_id,)).fetchall() if rows else []
            return rows, labels

        rows, labels = await self._db.call(work)
        return q.record_from_row(rows[0], labels, aq.from_micros) if rows else None

    async def list_prompts(self) -> list[PromptRecord]:
        def work(conn: sqlite3.Connection) -> tuple[list[Any], list[Any]]:
            rows = conn.execute(q.list_prompts_sql(self._t)).fetchall()
            return rows, conn.execute(q.all_labels_sql(self._t)).fetchall()

        rows, labels = await self._db.call(work)
        return [q.record_from_row(row, labels, aq.from_micros) for row in rows]

    async def get_version(self, prompt_id: str, version: int) -> PromptVersion | None:
        rows = await self._db.fetch(q.get_version_sql(D, self._t), (prompt_id, version))
        return q.version_from_row(rows[0], aq.from_micros) if rows else None

    async def set_label(
        self, prompt_id: str, label: str, version: int, at: datetime
    ) -> PromptRecord | None:
        def work(conn: sqlite3.Connection) -> tuple[list[Any], list[Any]]:
            def move() -> tuple[list[Any], list[Any]]:
                rows = conn.execute(q.get_prompt_sql(D, self._t), (prompt_id,)).fetchall()
                if not rows:
                    return rows, []
                if int(rows[0][3]) < version or version < 1:
                    raise VersionMissingError(prompt_id, version)
                conn.execute(
                    q.set_label_sql(D, self._t), (prompt_id, label, version, aq.to_micros(at))
                )
                return rows, conn.execute(q.labels_sql(D, self._t), (prompt_id,)).fetchall()

            return transaction(conn, move)

        rows, labels = await self._db.call(work)
        return q.record_from_row(rows[0], labels, aq.from_micros) if rows else None
