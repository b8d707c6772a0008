"""The PostgreSQL analytics schema, and the runner that applies it.

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
)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


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
