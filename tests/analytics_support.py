"""Shared by the analytics store tests: a throwaway PostgreSQL database and record builders."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from ai_gateway.usage.records import UsageRecord

DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: required)")
    pytest.skip(reason)


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def via_port(url: str, port: int) -> str:
    """`url` pointed at 127.0.0.1:`port` (a proxy), keeping its user and password."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{userinfo}@127.0.0.1:{port}".lstrip("@")))


def _admin(sql: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(with_database(DATABASE_URL, "postgres"), timeout=3)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    # Its own loop on its own thread: a fixture may be set up while a test's loop runs.
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, run()).result()


@contextlib.contextmanager
def throwaway_database() -> Iterator[str]:
    """A database created (through the `postgres` database) for the caller and dropped after;
    skips the test (fails it when CI=true) when PostgreSQL cannot be reached."""
    name = f"ai_gateway_test_{uuid.uuid4().hex[:12]}"
    try:
        _admin(f'CREATE DATABASE "{name}"')
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        unavailable(f"PostgreSQL at DATABASE_URL is unreachable: {type(exc).__name__}")
    try:
        yield with_database(DATABASE_URL, name)
    finally:
        _admin(f'DROP DATABASE "{name}" WITH (FORCE)')


def usage_record(rid: str, **fields: Any) -> UsageRecord:
    """A successful, priced, non-streamed chat request at T0, with `fields` changed."""
    values: dict[str, Any] = {
        "request_id": rid,
        "created_at": T0,
        "route": "chat",
        "model": "fast",
        "served_model": "fast",
        "provider": "openai",
        "deployment": "fast/0",
        "upstream_model": "gpt-4o-mini",
        "stream": False,
        "status": 200,
        "error_type": None,
        "error_code": None,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "cached_tokens": 2,
        "cache_write_tokens": 1,
        "reasoning_tokens": 3,
        "cost_usd": Decimal("0.000001234"),
        "latency_ms": 100.0,
        "ttft_ms": None,
        "attempts": 1,
        "fallbacks": 0,
    }
    values.update(fields)
    return UsageRecord(**values)


class TcpProxy:
    """127.0.0.1:<port> -> host:port. `stop()` aborts every connection and closes the listener;
    `start()` listens again on the same port."""

    def __init__(self, host: str, port: int, listen_port: int = 0) -> None:
        self._target = (host, port)
        self.port = listen_port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()
        await self._server.wait_closed()
        self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
