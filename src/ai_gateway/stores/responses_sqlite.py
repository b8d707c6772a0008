"""The response store in the analytics SQLite file (`<data_dir>/analytics.db` by default), on
its own connection and worker thread (`SQLiteWorker`). Every method is one statement; the
queries are `ResponseStoreBase`'s."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ai_gateway.stores import analytics_queries as aq
from ai_gateway.stores.rag_queries import Query
from ai_gateway.stores.responses import ResponseStoreBase
from ai_gateway.stores.sqlite_worker import SQLiteWorker


class SQLiteResponseStore(ResponseStoreBase):
    dialect = aq.SQLITE

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self._db = SQLiteWorker(self.path, name="responses", busy_timeout_s=busy_timeout_s)

    async def start(self) -> None:
        await self._db.call(lambda conn: None)

    async def aclose(self) -> None:
        await self._db.aclose()

    async def _write(self, query: Query) -> int:
        return await self._db.call(lambda conn: conn.execute(*query).rowcount)

    async def _fetch(self, query: Query) -> list[Any]:
        return await self._db.fetch(*query)
