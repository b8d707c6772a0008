"""The PostgreSQL schema (analytics: versions 1, 3, 4, 5 and 7; API keys and the audit log:
version 2; prompt templates: 6; chains: 8; RAG files and vector stores: 9;
stored responses of the Responses API: 10), and the runner
that applies it (every store of the database runs it).

The tables live in their own schema (`ai_gateway` unless configured), so a database shared with
other applications keeps its `public` tables apart. Costs are unconstrained NUMERIC (exact, any
scale); times are `timestamptz`.
"""

from __future__ import annotations

from typing import Any

from ai_gateway.stores.migrations import Migration, pending

# pg_advisory_xact_lock(key1, key2): key1 names this lock ("AIGW"), key2 is hashtext(schema).
LOCK_CLASS = 0x41494757

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "usage and feedback records",
        (
            """CREATE TABLE usage_records (
                request_id text PRIMARY KEY,
                created_at timestamptz NOT NULL,
                route text NOT NULL,
                model text NOT NULL,
                served_model text NOT NULL,
                provider text NOT NULL,
                deployment text NOT NULL,
                upstream_model text NOT NULL,
                stream boolean NOT NULL,
                status integer NOT NULL,
                error_type text,
                error_code text,
                prompt_tokens bigint NOT NULL,
                completion_tokens bigint NOT NULL,
                cached_tokens bigint NOT NULL,
                cache_write_tokens bigint NOT NULL,
                reasoning_tokens bigint NOT NULL,
                cost_usd numeric,
                latency_ms double precision NOT NULL,
                ttft_ms double precision,
                attempts integer NOT NULL,
                fallbacks integer NOT NULL,
                cache_status text NOT NULL,
                user_id text,
                key_id text,
                team text,
                template text
            )""",
            "CREATE INDEX usage_records_created_at ON usage_records (created_at)",
            "CREATE INDEX usage_records_model ON usage_records (model, created_at)",
            """CREATE TABLE feedback_records (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                request_id text NOT NULL,
                created_at timestamptz NOT NULL,
                score double precision NOT NULL,
                raw_score text NOT NULL,
                comment text,
                tags jsonb NOT NULL DEFAULT '[]',
                UNIQUE (request_id, created_at)
            )""",
            "CREATE INDEX feedback_records_created_at ON feedback_records (created_at)",
        ),
    ),
    Migration(
        2,
        "api keys and audit log",
        (
            """CREATE TABLE api_keys (
                id text PRIMARY KEY,
                name text,
                user_id text NOT NULL,
                team text,
                models jsonb NOT NULL,
                rps double precision,
                burst integer,
                tpm bigint,
                max_concurrent integer,
                budget_usd numeric,
                budget_period text,
                guardrails jsonb NOT NULL,
                expires_at timestamptz,
                metadata jsonb NOT NULL,
                salt bytea NOT NULL,
                secret_hash bytea NOT NULL,
                created_at timestamptz NOT NULL,
                revoked_at timestamptz,
                rotated_at timestamptz
            )""",
            "CREATE INDEX api_keys_user ON api_keys (user_id)",
            "CREATE INDEX api_keys_team ON api_keys (team)",
            """CREATE TABLE audit_log (
                id text PRIMARY KEY,
                created_at timestamptz NOT NULL,
                actor text NOT NULL,
                action text NOT NULL,
                target text,
                outcome text NOT NULL,
                source_ip text,
                request_id text,
                details jsonb NOT NULL
            )""",
            "CREATE INDEX audit_log_created_at ON audit_log (created_at)",
            "CREATE INDEX audit_log_target ON audit_log (target, created_at)",
            # Append-only, also for anyone writing SQL by hand (created in the migrated schema).
            """CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'audit_log is append-only';
            END
            $$""",
            """CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
            FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()""",
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
            "ALTER TABLE usage_records ADD COLUMN client_request_id text",
            "ALTER TABLE usage_records ADD COLUMN usage_estimated boolean NOT NULL DEFAULT false",
            "CREATE INDEX usage_records_client_request_id ON usage_records (client_request_id) "
            "WHERE client_request_id IS NOT NULL",
        ),
    ),
    Migration(
        5,
        "usage_records: what a response-cache hit saved",
        # Rows before this version saved nothing: 0 tokens, no cost.
        (
            "ALTER TABLE usage_records ADD COLUMN saved_tokens bigint NOT NULL DEFAULT 0",
            "ALTER TABLE usage_records ADD COLUMN saved_cost_usd numeric",
        ),
    ),
    Migration(
        6,
        "prompt templates: their versions (immutable) and labels (moving)",
        (
            """CREATE TABLE prompt_templates (
                id text NOT NULL PRIMARY KEY,
                description text,
                created_at timestamptz NOT NULL,
                latest_version integer NOT NULL
            )""",
            """CREATE TABLE prompt_versions (
                prompt_id text NOT NULL REFERENCES prompt_templates (id),
                version integer NOT NULL,
                template jsonb NOT NULL,
                variables jsonb NOT NULL,
                note text,
                created_at timestamptz NOT NULL,
                PRIMARY KEY (prompt_id, version)
            )""",
            """CREATE TABLE prompt_labels (
                prompt_id text NOT NULL,
                label text NOT NULL,
                version integer NOT NULL,
                updated_at timestamptz NOT NULL,
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
            "ALTER TABLE usage_records ADD COLUMN prompt_id text",
            "ALTER TABLE usage_records ADD COLUMN prompt_version integer",
        ),
    ),
    Migration(
        8,
        "chains: named lists of prompt steps, their versions (immutable) and labels (moving)",
        (
            """CREATE TABLE chains (
                id text NOT NULL PRIMARY KEY,
                description text,
                created_at timestamptz NOT NULL,
                latest_version integer NOT NULL
            )""",
            """CREATE TABLE chain_versions (
                chain_id text NOT NULL REFERENCES chains (id),
                version integer NOT NULL,
                definition jsonb NOT NULL,
                variables jsonb NOT NULL,
                note text,
                created_at timestamptz NOT NULL,
                PRIMARY KEY (chain_id, version)
            )""",
            """CREATE TABLE chain_labels (
                chain_id text NOT NULL,
                label text NOT NULL,
                version integer NOT NULL,
                updated_at timestamptz NOT NULL,
                PRIMARY KEY (chain_id, label),
                FOREIGN KEY (chain_id, version) REFERENCES chain_versions (chain_id, version)
            )""",
        ),
    ),
    Migration(
        9,
        "rag: files, vector stores, the files in each store and file batches",
        # `seq` keeps creation order (an identity: never reused) for lists and their cursors;
        # times are Unix seconds, as the records hold them; JSON columns are text, so that
        # metadata comes back with its keys in the order they were given (as in SQLite).
        (
            """CREATE TABLE files (
                seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                id text NOT NULL UNIQUE,
                filename text NOT NULL,
                bytes bigint NOT NULL,
                purpose text NOT NULL,
                created_at bigint NOT NULL,
                owner_kind text NOT NULL,
                owner_value text NOT NULL,
                sha256 text NOT NULL
            )""",
            """CREATE TABLE vector_stores (
                seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                id text NOT NULL UNIQUE,
                name text,
                description text,
                metadata text NOT NULL,
                created_at bigint NOT NULL,
                last_active_at bigint NOT NULL,
                expires_after text,
                owner_kind text NOT NULL,
                owner_value text NOT NULL
            )""",
            """CREATE TABLE vector_store_files (
                seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                store_id text NOT NULL,
                file_id text NOT NULL,
                status text NOT NULL,
                created_at bigint NOT NULL,
                chunking text NOT NULL,
                attributes text NOT NULL,
                last_error_code text,
                last_error_message text,
                usage_bytes bigint NOT NULL,
                chunks integer NOT NULL,
                batch_id text,
                UNIQUE (store_id, file_id)
            )""",
            "CREATE INDEX vector_store_files_status ON vector_store_files (status, seq)",
            "CREATE INDEX vector_store_files_file ON vector_store_files (file_id)",
            "CREATE INDEX vector_store_files_batch ON vector_store_files (batch_id)",
            """CREATE TABLE vector_store_file_batches (
                seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                id text NOT NULL UNIQUE,
                store_id text NOT NULL,
                created_at bigint NOT NULL,
                cancelled boolean NOT NULL
            )""",
            "CREATE INDEX vector_store_file_batches_store ON vector_store_file_batches (store_id)",
        ),
    ),
    Migration(
        10,
        "responses: the Responses API's stored responses",
        # `seq` keeps creation order (an identity: never reused); times are Unix seconds; the
        # Response object and the input items are JSON text, as the RAG tables keep theirs.
        # `previous_response_id` links a conversation's responses (followed backwards).
        (
            """CREATE TABLE responses (
                seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                id text NOT NULL UNIQUE,
                created_at bigint NOT NULL,
                owner_kind text NOT NULL,
                owner_value text NOT NULL,
                previous_response_id text,
                status text NOT NULL,
                response text NOT NULL,
                input_items text NOT NULL
            )""",
            "CREATE INDEX responses_created_at ON responses (created_at)",
        ),
    ),
)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def pending_versions(conn: Any, schema: str) -> list[int]:
    """The versions `schema` lacks (all of them when it has no history yet); applies nothing."""
    table = await conn.fetchval(
        "SELECT to_regclass($1)", f"{quote_ident(schema)}.schema_migrations"
    )
    if table is None:
        return [m.version for m in MIGRATIONS]
    # The schema's name is validated (stores/postgres_pool.py) and quoted.
    history = f"{quote_ident(schema)}.schema_migrations"
    rows = await conn.fetch(f"SELECT version FROM {history}")  # noqa: S608
    return [m.version for m in pending(MIGRATIONS, {row[0] for row in rows})]


async def migrate(conn: Any, schema: str) -> list[int]:
    """Apply the pending migrations to `schema` in one transaction on `conn` (an asyncpg
    connection); returns the versions applied. Concurrent callers queue on the advisory lock."""
    q = quote_ident(schema)
    done: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", LOCK_CLASS, schema)
        # CREATE SCHEMA needs a privilege that a schema made by an administrator makes moot.
        if not await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema):
            await conn.execute(f"CREATE SCHEMA {q}")
        await conn.execute(f"SET LOCAL search_path TO {q}")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version integer PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        applied = {row[0] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        for migration in pending(MIGRATIONS, applied):
            for statement in migration.statements:
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            done.append(migration.version)
    return done
