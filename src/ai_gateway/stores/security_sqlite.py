"""The security store in the analytics SQLite file (`<data_dir>/analytics.db` by default).

Its own connection on its own worker thread (`SQLiteWorker`), beside the analytics store's: both
run the same migrations, and the runner's write lock makes whichever opens the file first apply
them. Times are INTEGER microseconds (UTC), budgets TEXT decimals.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from ai_gateway.security.audit import AuditRecord
from ai_gateway.security.keys import ApiKey
from ai_gateway.stores import analytics_queries as aq
from ai_gateway.stores import security_queries as q
from ai_gateway.stores.migrations import latest
from ai_gateway.stores.migrations.sqlite import MIGRATIONS
from ai_gateway.stores.security import KeyExistsError, KeyRevokedError, check_audit_limit
from ai_gateway.stores.sqlite_worker import SQLiteWorker, transaction

D = aq.SQLITE


def _key(row: Sequence[Any]) -> ApiKey:
    return q.key_from_row(row, aq.from_micros)


class SQLiteSecurityStore:
    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self._db = SQLiteWorker(self.path, name="security", busy_timeout_s=busy_timeout_s)

    async def start(self) -> None:
        """Open the database (creating the file) and apply pending migrations."""
        await self._db.call(lambda conn: None)

    async def aclose(self) -> None:
        await self._db.aclose()

    # --- keys ------------------------------------------------------------------------------------

    async def create_key(self, key: ApiKey) -> None:
        row = q.key_values(key, aq.to_micros, aq.decimal_text)
        sql = q.insert_key_sql(D)
        inserted = await self._db.call(lambda conn: conn.execute(sql, row).rowcount)
        if not inserted:
            raise KeyExistsError(key.id)

    async def get_key(self, key_id: str) -> ApiKey | None:
        rows = await self._db.fetch(q.get_key_sql(D), (key_id,))
        return _key(rows[0]) if rows else None

    async def list_keys(
        self, *, user: str | None = None, team: str | None = None, include_revoked: bool = False
    ) -> list[ApiKey]:
        sql, params = q.list_keys_sql(D, user=user, team=team, include_revoked=include_revoked)
        return [_key(row) for row in await self._db.fetch(sql, params)]

    async def revoke_key(self, key_id: str, at: datetime) -> ApiKey | None:
        update, select = q.revoke_key_sql(D), q.get_key_sql(D)

        def work(conn: sqlite3.Connection) -> list[Any]:
            def revoke() -> list[Any]:
                conn.execute(update, (key_id, aq.to_micros(at)))
                return conn.execute(select, (key_id,)).fetchall()

            return transaction(conn, revoke)

        rows = await self._db.call(work)
        return _key(rows[0]) if rows else None

    async def rotate_key(
        self, key_id: str, salt: bytes, secret_hash: bytes, at: datetime
    ) -> ApiKey | None:
        update, select = q.rotate_key_sql(D), q.get_key_sql(D)

        def work(conn: sqlite3.Connection) -> tuple[int, list[Any]]:
            def rotate() -> tuple[int, list[Any]]:
                changed = conn.execute(update, (key_id, salt, secret_hash, aq.to_micros(at)))
                return changed.rowcount, conn.execute(select, (key_id,)).fetchall()

            return transaction(conn, rotate)

        changed, rows = await self._db.call(work)
        if not rows:
            return None
        if not changed:
            raise KeyRevokedError(key_id)
        return _key(rows[0])

    # --- the audit log ---------------------------------------------------------------------------

    async def write_audit(self, records: Sequence[AuditRecord]) -> None:
        if not records:
            return
        sql = q.insert_audit_sql(D)
        rows = [q.audit_values(r, aq.to_micros) for r in records]

        def work(conn: sqlite3.Connection) -> None:
            transaction(conn, lambda: conn.executemany(sql, rows))

        await self._db.call(work)

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
        params = [aq.to_micros(start), aq.to_micros(end), *filters, limit]
        return [q.audit_row(row, aq.from_micros) for row in await self._db.fetch(sql, params)]

    # --- for tests and operators -----------------------------------------------------------------

    async def schema_version(self) -> int:
        """The highest migration version the database has."""
        rows = await self._db.fetch("SELECT max(version) FROM schema_migrations", ())
        return int(rows[0][0] or 0)

    @staticmethod
    def latest_version() -> int:
        return latest(MIGRATIONS)
