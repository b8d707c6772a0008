"""The prompt store in the analytics PostgreSQL database (when DATABASE_URL is set): its own
small asyncpg pool (`PostgresPool`) in the analytics store's schema. The same class keeps the
chains, in their own tables (`tables=prompts_queries.CHAINS`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ai_gateway.prompts.records import PromptRecord, PromptVersion
from ai_gateway.stores import analytics_queries as aq
from ai_gateway.stores import prompts_queries as q
from ai_gateway.stores.postgres_pool import PostgresOptions, PostgresPool
from ai_gateway.stores.prompts import PromptExistsError, VersionMissingError

D = aq.POSTGRES


class PostgresPromptStore:
    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "ai_gateway",
        min_size: int = 1,
        max_size: int = 2,
        connect_timeout_s: float = 5.0,
        command_timeout_s: float = 30.0,
        options: PostgresOptions | None = None,
        tables: q.Tables = q.PROMPTS,
    ) -> None:
        """`tables`: which kind of document this store keeps (prompt templates, chains)."""
        self._t = tables
        self._db = PostgresPool(
            dsn,
            name=tables.kind,
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
        row = q.version_values(first, aq.utc)
        # Raised after the transaction: an error inside it means "the database failed".
        async with self._db.transaction() as conn:
            status = await conn.execute(
                q.insert_prompt_sql(D, self._t), prompt_id, description, row[-1]
            )
            if status != "INSERT 0 0":
                await conn.execute(q.insert_version_sql(D, self._t), *row)
        if status == "INSERT 0 0":
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
        async with self._db.transaction() as conn:
            number = await conn.fetchval(q.next_version_sql(D, self._t), prompt_id)
            if number is None:
                return None
            version = PromptVersion(prompt_id, int(number), template, variables, at, note)
            await conn.execute(q.insert_version_sql(D, self._t), *q.version_values(version, aq.utc))
        return version

    async def get_prompt(self, prompt_id: str) -> PromptRecord | None:
        rows = await self._db.fetch(q.get_prompt_sql(D, self._t), prompt_id)
        if not rows:
            return None
        labels = await self._db.fetch(q.labels_sql(D, self._t), prompt_id)
        return q.record_from_row(rows[0], labels, aq.utc)

    async def list_prompts(self) -> list[PromptRecord]:
        rows = await self._db.fetch(q.list_prompts_sql(self._t))
        labels = await self._db.fetch(q.all_labels_sql(self._t))
        return [q.record_from_row(row, labels, aq.utc) for row in rows]

    async def get_version(self, prompt_id: str, version: int) -> PromptVersion | None:
        rows = await self._db.fetch(q.get_version_sql(D, self._t), prompt_id, version)
        return q.version_from_row(rows[0], aq.utc) if rows else None

    async def set_label(
        self, prompt_id: str, label: str, version: int, at: datetime
    ) -> PromptRecord | None:
        labels: list[Any] = []
        async with self._db.transaction() as conn:
            row = await conn.fetchrow(q.get_prompt_sql(D, self._t) + " FOR UPDATE", prompt_id)
            exists = row is not None and 1 <= version <= int(row[3])
            if exists:
                await conn.execute(
                    q.set_label_sql(D, self._t), prompt_id, label, version, aq.utc(at)
                )
                labels = await conn.fetch(q.labels_sql(D, self._t), prompt_id)
        if row is None:
            return None
        if not exists:
            raise VersionMissingError(prompt_id, version)
        return q.record_from_row(row, labels, aq.utc)
