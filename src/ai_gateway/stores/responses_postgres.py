"""The response store in the analytics PostgreSQL database (when DATABASE_URL is set): its own
small asyncpg pool (`PostgresPool`) in the analytics store's schema. Every method is one
statement; the queries are `ResponseStoreBase`'s."""

from __future__ import annotations

from typing import Any

from ai_gateway.stores import analytics_queries as aq
from ai_gateway.stores.postgres_pool import PostgresOptions, PostgresPool
from ai_gateway.stores.rag_queries import Query
from ai_gateway.stores.responses import ResponseStoreBase


def _changed(status: str) -> int:
    """The row count of a command status ("DELETE 1", "INSERT 0 1")."""
    return int(status.rsplit(" ", 1)[-1])


class PostgresResponseStore(ResponseStoreBase):
    dialect = aq.POSTGRES

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "ai_gateway",
        min_size: int = 1,
        max_size: int = 4,
        connect_timeout_s: float = 5.0,
        command_timeout_s: float = 30.0,
        options: PostgresOptions | None = None,
    ) -> None:
        self._db = PostgresPool(
            dsn,
            name="responses",
            schema=schema,
            min_size=min_size,
            max_size=max_size,
            connect_timeout_s=connect_timeout_s,
            command_timeout_s=command_timeout_s,
            options=options,
        )

    async def start(self) -> None:
        await self._db.ready()

    async def aclose(self) -> None:
        await self._db.aclose()

    async def _write(self, query: Query) -> int:
        async with self._db.transaction() as conn:
            return _changed(await conn.execute(query[0], *query[1]))

    async def _fetch(self, query: Query) -> list[Any]:
        return await self._db.fetch(query[0], *query[1])
