"""Choosing the analytics, security, prompt, chain, RAG and response stores from the settings.

PostgreSQL when `database_url` (or DATABASE_URL) is set, else a SQLite file at
`<data_dir>/analytics.db`; both stores use the same database. Nothing connects here: the caller
starts the store (`await store.start()`, which may raise StoreUnavailableError when PostgreSQL is
down; the store then connects on its next use) and the writer, and closes the writer before the
store. The background writer that feeds them is built by app assembly (`app.analytics_writer`).
"""

from __future__ import annotations

import re
from pathlib import Path

from ai_gateway.settings import ConfigError, GatewaySettings
from ai_gateway.stores.analytics import AnalyticsStore
from ai_gateway.stores.analytics_postgres import PostgresAnalyticsStore
from ai_gateway.stores.analytics_sqlite import SQLiteAnalyticsStore
from ai_gateway.stores.postgres_pool import PostgresOptions
from ai_gateway.stores.prompts import PromptStore
from ai_gateway.stores.prompts_postgres import PostgresPromptStore
from ai_gateway.stores.prompts_queries import CHAINS
from ai_gateway.stores.prompts_sqlite import SQLitePromptStore
from ai_gateway.stores.rag import RagStore
from ai_gateway.stores.rag_postgres import PostgresRagStore
from ai_gateway.stores.rag_sqlite import SQLiteRagStore
from ai_gateway.stores.responses import ResponseStore
from ai_gateway.stores.responses_postgres import PostgresResponseStore
from ai_gateway.stores.responses_sqlite import SQLiteResponseStore
from ai_gateway.stores.security import SecurityStore
from ai_gateway.stores.security_postgres import PostgresSecurityStore
from ai_gateway.stores.security_sqlite import SQLiteSecurityStore

SQLITE_FILE = "analytics.db"
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]{0,19}):")


def postgres_options(settings: GatewaySettings) -> PostgresOptions:
    """The `database_*` settings, for every PostgreSQL store."""
    return PostgresOptions(
        min_size=settings.database_pool_min_size,
        max_size=settings.database_pool_max_size,
        migrate=settings.database_migrate_at_start,
        pgbouncer=settings.database_pgbouncer,
    )


def postgres_url(settings: GatewaySettings) -> str | None:
    """The PostgreSQL URL the settings name, or None (SQLite); see `_postgres_url`."""
    return _postgres_url(settings)


def sqlite_path(settings: GatewaySettings) -> Path:
    """The SQLite file the stores use without a PostgreSQL URL; see `_sqlite_path`."""
    return _sqlite_path(settings)


def _postgres_url(settings: GatewaySettings) -> str | None:
    """The PostgreSQL URL the settings name, or None (SQLite). ConfigError for another scheme;
    the message never repeats the URL."""
    if settings.database_url is None:
        return None
    url = settings.database_url.get_secret_value()
    match = _SCHEME.match(url)
    scheme = match[1].lower() if match else None
    if scheme not in ("postgres", "postgresql"):
        shown = f"the scheme {scheme!r}" if scheme else "a value that is not a URL"
        raise ConfigError(
            f"database_url (DATABASE_URL): {shown} is not supported; use "
            "postgresql://user:password@host:5432/dbname, or unset it for SQLite under "
            "data_dir"
        )
    return url


def _sqlite_path(settings: GatewaySettings) -> Path:
    """`<data_dir>/analytics.db`, creating the directory (ConfigError when it cannot be)."""
    directory = Path(settings.data_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"data_dir: cannot create {str(directory)!r} for the analytics database: {exc.strerror}"
        ) from exc
    return directory / SQLITE_FILE


def open_analytics_store(settings: GatewaySettings) -> AnalyticsStore:
    """The store the settings name (not started). ConfigError for a URL that is not PostgreSQL's
    or a data directory that cannot be created; the message never repeats the URL."""
    url = _postgres_url(settings)
    if url is not None:
        return PostgresAnalyticsStore(url, options=postgres_options(settings))
    return SQLiteAnalyticsStore(_sqlite_path(settings))


def open_security_store(settings: GatewaySettings) -> SecurityStore:
    """The store of virtual keys and the audit log, in the same database as the analytics
    store (not started; same errors as `open_analytics_store`)."""
    url = _postgres_url(settings)
    if url is not None:
        return PostgresSecurityStore(url, options=postgres_options(settings))
    return SQLiteSecurityStore(_sqlite_path(settings))


def open_prompt_store(settings: GatewaySettings) -> PromptStore:
    """The store of prompt templates, in the same database as the analytics store (not
    started; same errors as `open_analytics_store`)."""
    url = _postgres_url(settings)
    if url is not None:
        return PostgresPromptStore(url, options=postgres_options(settings))
    return SQLitePromptStore(_sqlite_path(settings))


def open_chain_store(settings: GatewaySettings) -> PromptStore:
    """The store of chains: the prompt store's class on the chains' own tables, in the same
    database (not started; same errors as `open_analytics_store`)."""
    url = _postgres_url(settings)
    if url is not None:
        return PostgresPromptStore(url, tables=CHAINS, options=postgres_options(settings))
    return SQLitePromptStore(_sqlite_path(settings), tables=CHAINS)


def open_rag_store(settings: GatewaySettings) -> RagStore:
    """The store of RAG files, vector stores and their files and batches, in the same database
    as the analytics store (not started; same errors as `open_analytics_store`)."""
    url = _postgres_url(settings)
    if url is not None:
        return PostgresRagStore(url, options=postgres_options(settings))
    return SQLiteRagStore(_sqlite_path(settings))


def open_response_store(settings: GatewaySettings) -> ResponseStore:
    """The store of the Responses API's stored responses, in the same database as the analytics
    store (not started; same errors as `open_analytics_store`)."""
    url = _postgres_url(settings)
    if url is not None:
        return PostgresResponseStore(url, options=postgres_options(settings))
    return SQLiteResponseStore(_sqlite_path(settings))
