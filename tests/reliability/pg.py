"""A throwaway PostgreSQL database for a scenario (created through the `postgres` database of
DATABASE_URL, dropped after), and reading the usage rows straight from it."""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from reliability.scenario import Unavailable

DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def via_port(url: str, port: int) -> str:
    """`url` pointed at 127.0.0.1:`port` (a proxy), keeping its user and password."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{userinfo}@127.0.0.1:{port}".lstrip("@")))


def target_port(url: str = DATABASE_URL) -> int:
    return urlsplit(url).port or 5432


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(with_database(DATABASE_URL, "postgres"), timeout=3)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@asynccontextmanager
async def throwaway_database() -> AsyncIterator[str]:
    name = f"ai_gateway_reliability_{uuid.uuid4().hex[:10]}"
    try:
        await _admin(f'CREATE DATABASE "{name}"')
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        reason = f"PostgreSQL at DATABASE_URL is unreachable: {type(exc).__name__}"
        raise Unavailable(reason) from exc
    try:
        yield with_database(DATABASE_URL, name)
    finally:
        await _admin(f'DROP DATABASE "{name}" WITH (FORCE)')


async def usage_ids(url: str) -> Counter[str]:
    """How many usage rows each request id has (the table's key makes more than one
    impossible; counted anyway, so that a change of key would show)."""
    conn = await asyncpg.connect(url, timeout=5)
    try:
        exists = await conn.fetchval("SELECT to_regclass('ai_gateway.usage_records')")
        if exists is None:
            return Counter()
        rows = await conn.fetch("SELECT request_id FROM ai_gateway.usage_records")
    finally:
        await conn.close()
    return Counter(row["request_id"] for row in rows)
