"""The security store in the analytics PostgreSQL database (when DATABASE_URL is set).

Its own small asyncpg pool (`PostgresPool`) in the analytics store's schema; both stores run the
same migrations under one advisory lock. Times are timestamptz, budgets numeric, lists and
mappings jsonb.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ai_gateway.security.audit import AuditRecord
from ai_gateway.security.keys import ApiKey
from ai_gateway.stores import analytics_queries as aq
from ai_gateway.stores import security_queries as q
from ai_gateway.stores.migrations import latest
from ai_gateway.stores.migrations.postgres import MIGRATIONS
from ai_gateway.stores.postgres_pool import PostgresOptions, PostgresPool
from ai_gateway.stores.security import KeyExistsError, KeyRevokedError, check_audit_limit

D = aq.POSTGRES


def _keep(value: Any) -> Any:
    return value


def _key(row: Sequence[Any]) -> ApiKey:
    return q.key_from_row(row, aq.utc)


class PostgresSecurityStore:
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
    ) -> None:
        self._db = PostgresPool(
            dsn,
            name="security",
            schema=schema,
            min_size=min_size,
            max_size=max_size,
            connect_timeout_s=connect_timeout_s,
            command_timeout_s=command_timeout_s,
            options=options,
        )
        self.schema = schema

    async def start(self) -> None:
        """Connect and migrate; StoreUnavailableError when PostgreSQL cannot be reached (later
        calls try again)."""
        await self._db.ready()

    async def aclose(self) -> None:
        await self._db.aclose()

    # --- keys ------------------------------------------------------------------------------------

    async def create_key(self, key: ApiKey) -> None:
        row = q.key_values(key, aq.utc, _keep)
        async with self._db.transaction() as conn:
            status = await conn.execute(q.insert_key_sql(D), *row)
        if status == "INSERT 0 0":
            raise KeyExistsError(key.id)

    async def get_key(self, key_id: str) -> ApiKey | None:
        rows = await self._db.fetch(q.get_key_sql(D), key_id)
        return _key(rows[0]) if rows else None

    async def list_keys(
        self, *, user: str | None = None, team: str | None = None, include_revoked: bool = False
    ) -> list[ApiKey]:
        sql, params = q.list_keys_sql(D, user=user, team=team, include_revoked=include_revoked)
        return [_key(row) for row in await self._db.fetch(sql, *params)]

    async def revoke_key(self, key_id: str, at: datetime) -> ApiKey | None:
        async with self._db.transaction() as conn:
            await conn.execute(q.revoke_key_sql(D), key_id, aq.utc(at))
            row = await conn.fetchrow(q.get_key_sql(D), key_id)
        return None if row is None else _key(row)

    async def rotate_key(
        self, key_id: str, salt: bytes, secret_hash: bytes, at: datetime
    ) -> ApiKey | None:
        async with self._db.transaction() as conn:
            status = await conn.execute(q.rotate_key_sql(D), key_id, salt, secret_hash, aq.utc(at))
            row = await conn.fetchrow(q.get_key_sql(D), key_id)
        if row is None:
            return None
        if status == "UPDATE 0":
            raise KeyRevokedError(key_id)
        return _key(row)

    # --- the audit log ---------------------------------------------------------------------------

    async def write_audit(self, records: Sequence[AuditRecord]) -> None:
        if records:
            rows = [q.audit_values(r, aq.utc) for r in records]
            await self._db.write(q.insert_audit_sql(D), rows)

    async def audit(
        self,
        *,
        start: datetime,
        end: datetime,
        action: str | None = None,
        actor: str | None = None,
        target: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        check_audit_limit(limit)
        sql, filters = q.audit_sql(D, action=action, actor=actor, target=target)
        rows = await self._db.fetch(sql, aq.utc(start), aq.utc(end), *filters, limit)
        return [q.audit_row(row, aq.utc) for row in rows]

    # --- for tests and operators -----------------------------------------------------------------

    async def schema_version(self) -> int:
        """The highest migration version the database has."""
        rows = await self._db.fetch("SELECT max(version) FROM schema_migrations")
        return int(rows[0][0] or 0)

    @staticmethod
    def latest_version() -> int:
        return latest(MIGRATIONS)
