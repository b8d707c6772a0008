"""`ai-gateway migrate`, and the schema check `serve` makes when it does not migrate itself
(`database_migrate_at_start: false`). The work is `stores/migrate.py`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from ai_gateway.settings import Config, ConfigError, load_config


def add_parser(sub: Any) -> None:
    migrate = sub.add_parser(
        "migrate",
        help="apply the database schema's migrations and exit",
        description="Apply the pending schema migrations to the database the configuration "
        "names (database_url or DATABASE_URL: PostgreSQL; else the SQLite file under data_dir), "
        "for every store at once, and exit. Run it before starting gateways that have "
        "database_migrate_at_start: false (for example as a deploy step, with credentials "
        "allowed to change the schema while the gateways' are not). Safe to run again, and "
        "from several places at once: a lock makes each migration apply once. Exit status: 0 "
        "done, 1 the database cannot be reached or a migration failed (or, with --check, "
        "migrations are pending), 2 a configuration error.",
    )
    migrate.add_argument("--config", help="YAML config file (default: $AI_GATEWAY_CONFIG)")
    migrate.add_argument(
        "--check",
        action="store_true",
        help="apply nothing: print the pending migrations (exit status 1 if there are any)",
    )


def schema_problem(config: Config) -> str | None:
    """With `database_migrate_at_start: false`: why `serve` must not start (the schema lacks
    migrations), or None. A database that cannot be reached now does not stop the start (as
    with migrations on): the stores check the schema when they connect."""
    from ai_gateway.observability.logging import get_logger
    from ai_gateway.stores.analytics import StoreUnavailableError
    from ai_gateway.stores.migrate import schema_state

    try:
        state = asyncio.run(schema_state(config.gateway, apply=False))
    except StoreUnavailableError as exc:
        get_logger("ai_gateway.cli").warning("schema_not_checked", error=str(exc))
        return None
    if not state.pending:
        return None
    return (
        f"the {state.backend} database ({state.where}) lacks migrations {state.pending}: run "
        "`ai-gateway migrate` with this configuration first (database_migrate_at_start is "
        "false, so serve does not migrate)"
    )


def run(args: argparse.Namespace) -> int:
    from ai_gateway.stores.analytics import StoreUnavailableError
    from ai_gateway.stores.migrate import schema_state

    try:
        settings = load_config(args.config).gateway
        state = asyncio.run(schema_state(settings, apply=not args.check))
    except ConfigError as exc:
        print(f"ai-gateway: error: {exc}", file=sys.stderr)
        return 2
    except StoreUnavailableError as exc:
        print(f"ai-gateway: {exc}", file=sys.stderr)
        return 1
    where = f"{state.backend} ({state.where})"
    if args.check:
        if state.pending:
            print(
                f"{where}: pending migrations {state.pending} (this gateway needs version "
                f"{state.latest})"
            )
            return 1
        print(f"{where}: up to date (version {state.latest})")
        return 0
    if state.applied:
        print(f"{where}: applied migrations {state.applied}; now at version {state.latest}")
    else:
        print(f"{where}: already up to date (version {state.latest})")
    return 0
