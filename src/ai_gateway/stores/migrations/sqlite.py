"""The SQLite analytics schema, and the runner that applies it (on the store's worker thread).

Times are INTEGER microseconds since the epoch (UTC); costs are TEXT decimals (exact; summed by
the `gw_dsum` aggregate). TEXT affinity keeps "0.000001234" as written: a NUMERIC column would
turn it into a float.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from ai_gateway.stores.migrations import Migration, pending

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "usage and feedback records",
        (
            """CREATE TABLE usage_records (
                request_id TEXT NOT NULL PRIMARY KEY,
                created_at INTEGER NOT NULL,
                route TEXT NOT NULL,
                model TEXT NOT NULL,
                served_model TEXT NOT NULL,
                provider TEXT NOT NULL,
                deployment TEXT NOT NULL,
                upstream_model TEXT NOT NULL,
                stream INTEGER NOT NULL,
                status INTEGER NOT NULL,
                error_type TEXT,
                error_code TEXT,
                prompt_tokens INTEGER NOT NULL,
                completion_tokens INTEGER NOT NULL,
                cached_tokens INTEGER NOT NULL,
                cache_write_tokens INTEGER NOT NULL,
                reasoning_tokens INTEGER NOT NULL,
                cost_usd TEXT,
                latency_ms REAL NOT NULL,
                ttft_ms REAL,
                attempts INTEGER NOT NULL,
                fallbacks INTEGER NOT NULL,
                cache_status TEXT NOT NULL,
                user_id TEXT,
                key_id TEXT,
                team TEXT,
                template TEXT
            )""",
            "CREATE INDEX usage_records_created_at ON usage_records (created_at)",
            "CREATE INDEX usage_records_model ON usage_records (model, created_at)",
            """CREATE TABLE feedback_records (
                id INTEGER PRIMARY KEY,
                request_id TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                score REAL NOT NULL,
                raw_score TEXT NOT NULL,
                comment TEXT,
                tags TEXT NOT NULL DEFAULT '[]',
                UNIQUE (request_id, created_at)
            )""",
            "CREATE INDEX feedback_records_created_at ON feedback_records (created_at)",
        ),
    ),
)

_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
)"""


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Apply the pending migrations in one transaction; returns the versions applied. `conn` is in
    autocommit mode (isolation_level=None), so the transaction here is explicit."""
    conn.execute("BEGIN IMMEDIATE")  # the write lock: a second process waits, then sees it done
    try:
        conn.execute(_TABLE)
        applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        done: list[int] = []
        for migration in pending(MIGRATIONS, applied):
            for statement in migration.statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, datetime.now(UTC).isoformat()),
            )
            done.append(migration.version)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return done
