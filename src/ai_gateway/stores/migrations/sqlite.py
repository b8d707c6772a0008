"""The SQLite schema (analytics: versions 1, 3, 4, 5 and 7; API keys and the audit log:
version 2; prompt templates: 6; chains: 8; RAG files and vector stores: 9;
stored responses of the Responses API: 10), and the runner
that applies it (on a store's worker thread; every store of the file runs it).

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
    Migration(
        2,
        "api keys and audit log",
        (
            # models, guardrails: JSON arrays; metadata: a JSON object; budget_usd: TEXT decimal.
            """CREATE TABLE api_keys (
                id TEXT NOT NULL PRIMARY KEY,
                name TEXT,
                user_id TEXT NOT NULL,
                team TEXT,
                models TEXT NOT NULL,
                rps REAL,
                burst INTEGER,
                tpm INTEGER,
                max_concurrent INTEGER,
                budget_usd TEXT,
                budget_period TEXT,
                guardrails TEXT NOT NULL,
                expires_at INTEGER,
                metadata TEXT NOT NULL,
                salt BLOB NOT NULL,
                secret_hash BLOB NOT NULL,
                created_at INTEGER NOT NULL,
                revoked_at INTEGER,
                rotated_at INTEGER
            )""",
            "CREATE INDEX api_keys_user ON api_keys (user_id)",
            "CREATE INDEX api_keys_team ON api_keys (team)",
            """CREATE TABLE audit_log (
                id TEXT NOT NULL PRIMARY KEY,
                created_at INTEGER NOT NULL,
                actor TEXT NOT NULL,
                action TEXT NOT NULL,
                target TEXT,
                outcome TEXT NOT NULL,
                source_ip TEXT,
                request_id TEXT,
                details TEXT NOT NULL
            )""",
            "CREATE INDEX audit_log_created_at ON audit_log (created_at)",
            "CREATE INDEX audit_log_target ON audit_log (target, created_at)",
            # Append-only, also for anyone writing SQL by hand.
            """CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
            BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
            """CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
            BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
        ),
    ),
    Migration(
        3,
        "drop the unused index on usage_records (model, created_at)",
        # Every report reads a time range (the created_at index); this one only cost each insert.
        ("DROP INDEX IF EXISTS usage_records_model",),
    ),
    Migration(
        4,
        "usage_records: the client's request id, and whether the tokens were counted",
        # `request_id` (the key) now holds the gateway's own unique id; until this version it
        # held the client's x-request-id when one was sent, so a reused id kept only one row.
        # Rows before this version keep the id they had and no client id.
        (
            "ALTER TABLE usage_records ADD COLUMN client_request_id TEXT",
            "ALTER TABLE usage_records ADD COLUMN usage_estimated INTEGER NOT NULL DEFAULT 0",
            "CREATE INDEX usage_records_client_request_id ON usage_records (client_request_id) "
            "WHERE client_request_id IS NOT NULL",
        ),
    ),
    Migration(
        5,
        "usage_records: what a response-cache hit saved",
        # Rows before this version saved nothing: 0 tokens, no cost.
        (
            "ALTER TABLE usage_records ADD COLUMN saved_tokens INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE usage_records ADD COLUMN saved_cost_usd TEXT",
        ),
    ),
    Migration(
        6,
        "prompt templates: their versions (immutable) and labels (moving)",
        (
            """CREATE TABLE prompt_templates (
                id TEXT NOT NULL PRIMARY KEY,
                description TEXT,
                created_at INTEGER NOT NULL,
                latest_version INTEGER NOT NULL
            )""",
            """CREATE TABLE prompt_versions (
                prompt_id TEXT NOT NULL REFERENCES prompt_templates (id),
                version INTEGER NOT NULL,
                template TEXT NOT NULL,
                variables TEXT NOT NULL,
                note TEXT,
                created_at INTEGER NOT NULL,
                PRIMARY KEY (prompt_id, version)
            )""",
            """CREATE TABLE prompt_labels (
                prompt_id TEXT NOT NULL,
                label TEXT NOT NULL,
                version INTEGER NOT NULL,
                updated_at INTEGER NOT NULL,
                PRIMARY KEY (prompt_id, label),
                FOREIGN KEY (prompt_id, version) REFERENCES prompt_versions (prompt_id, version)
            )""",
        ),
    ),
    Migration(
        7,
        "usage_records: the prompt template version a request rendered",
        # Rows before this version, and requests without a template: NULL.
        (
            "ALTER TABLE usage_records ADD COLUMN prompt_id TEXT",
            "ALTER TABLE usage_records ADD COLUMN prompt_version INTEGER",
        ),
    ),
    Migration(
        8,
        "chains: named lists of prompt steps, their versions (immutable) and labels (moving)",
        (
            """CREATE TABLE chains (
                id TEXT NOT NULL PRIMARY KEY,
                description TEXT,
                created_at INTEGER NOT NULL,
                latest_version INTEGER NOT NULL
            )""",
            """CREATE TABLE chain_versions (
                chain_id TEXT NOT NULL REFERENCES chains (id),
                version INTEGER NOT NULL,
                definition TEXT NOT NULL,
                variables TEXT NOT NULL,
                note TEXT,
                created_at INTEGER NOT NULL,
                PRIMARY KEY (chain_id, version)
            )""",
            """CREATE TABLE chain_labels (
                chain_id TEXT NOT NULL,
                label TEXT NOT NULL,
                version INTEGER NOT NULL,
                updated_at INTEGER NOT NULL,
                PRIMARY KEY (chain_id, label),
                FOREIGN KEY (chain_id, version) REFERENCES chain_versions (chain_id, version)
            )""",
        ),
    ),
    Migration(
        9,
        "rag: files, vector stores, the files in each store and file batches",
        # `seq` keeps creation order (never reused: AUTOINCREMENT) for lists and their cursors;
        # times are Unix seconds, as the records hold them; JSON columns are TEXT.
        (
            """CREATE TABLE files (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                filename TEXT NOT NULL,
                bytes INTEGER NOT NULL,
                purpose TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                owner_kind TEXT NOT NULL,
                owner_value TEXT NOT NULL,
                sha256 TEXT NOT NULL
            )""",
            """CREATE TABLE vector_stores (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                name TEXT,
                description TEXT,
                metadata TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                last_active_at INTEGER NOT NULL,
                expires_after TEXT,
                owner_kind TEXT NOT NULL,
                owner_value TEXT NOT NULL
            )""",
            """CREATE TABLE vector_store_files (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                store_id TEXT NOT NULL,
                file_id TEXT NOT NULL,
                status TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                chunking TEXT NOT NULL,
                attributes TEXT NOT NULL,
                last_error_code TEXT,
                last_error_message TEXT,
                usage_bytes INTEGER NOT NULL,
                chunks INTEGER NOT NULL,
                batch_id TEXT,
                UNIQUE (store_id, file_id)
            )""",
            "CREATE INDEX vector_store_files_status ON vector_store_files (status, seq)",
            "CREATE INDEX vector_store_files_file ON vector_store_files (file_id)",
            "CREATE INDEX vector_store_files_batch ON vector_store_files (batch_id)",
            """CREATE TABLE vector_store_file_batches (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                store_id TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                cancelled INTEGER NOT NULL
            )""",
            "CREATE INDEX vector_store_file_batches_store ON vector_store_file_batches (store_id)",
        ),
    ),
    Migration(
        10,
        "responses: the Responses API's stored responses",
        # `seq` keeps creation order (AUTOINCREMENT: never reused); times are Unix seconds; the
        # Response object and the input items are JSON text.
        # `previous_response_id` links a conversation's responses (followed backwards).
        (
            """CREATE TABLE responses (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                created_at INTEGER NOT NULL,
                owner_kind TEXT NOT NULL,
                owner_value TEXT NOT NULL,
                previous_response_id TEXT,
                status TEXT NOT NULL,
                response TEXT NOT NULL,
                input_items TEXT NOT NULL
            )""",
            "CREATE INDEX responses_created_at ON responses (created_at)",
        ),
    ),
)

_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
)"""


def pending_versions(conn: sqlite3.Connection) -> list[int]:
    """The versions the database lacks (all of them when it has no history yet)."""
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if row is None:
        return [m.version for m in MIGRATIONS]
    applied = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
    return [m.version for m in pending(MIGRATIONS, applied)]


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
