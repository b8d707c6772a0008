"""A store outage delays analytics writes but loses none and duplicates none.

PostgreSQL is reached through a TCP proxy written here: stopping the proxy cuts every pooled
connection and refuses new ones, as a database that went away would; starting it again on the
same port is the database coming back. SQLite's outage is its write lock held by someone else.
A SIGTERM to a process under load flushes everything it accepted.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
from structlog.testing import capture_logs

from ai_gateway.stores.analytics import StoreUnavailableError
from ai_gateway.stores.analytics_postgres import PostgresAnalyticsStore
from ai_gateway.stores.analytics_sqlite import SQLiteAnalyticsStore
from ai_gateway.usage.records import UsageRecord
from ai_gateway.usage.writer import AnalyticsWriter
from analytics_support import T0, TcpProxy, throwaway_database, usage_record, via_port
from harness import free_port

COST = Decimal("0.000001234")
WINDOW = (T0 - timedelta(days=1), T0 + timedelta(days=1))
FAST = {"flush_interval_s": 0.01, "backoff_s": (0.01, 0.1), "write_timeout_s": 2.0}


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    with throwaway_database() as url:
        yield url


def usage(i: int) -> UsageRecord:
    return usage_record(
        f"req-{i:06d}",
        created_at=T0 + timedelta(milliseconds=i),
        prompt_tokens=11,
        completion_tokens=7,
        cost_usd=COST,
    )


async def eventually(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


@pytest.fixture
async def proxy(pg_database: str) -> AsyncIterator[TcpProxy]:
    target = urlsplit(pg_database)
    started = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    await started.start()
    yield started
    if started._server is not None:
        await started.stop()


async def stored(pg_database: str, schema: str) -> tuple[int, int, Decimal, list[str]]:
    """Read straight from PostgreSQL (not through the proxy)."""
    conn = await asyncpg.connect(pg_database, server_settings={"search_path": schema})
    try:
        count, distinct, cost = await conn.fetchrow(
            "SELECT count(*), count(DISTINCT request_id), sum(cost_usd) FROM usage_records"
        )
        ids = [row[0] for row in await conn.fetch("SELECT request_id FROM usage_records")]
    finally:
        await conn.close()
    return count, distinct, cost, sorted(ids)


async def test_stopping_postgres_mid_stream_loses_and_duplicates_nothing(
    pg_database: str, proxy: TcpProxy
) -> None:
    schema = f"outage_{uuid.uuid4().hex[:10]}"
    url = via_port(pg_database, proxy.port)
    store = PostgresAnalyticsStore(url, schema=schema, connect_timeout_s=1, command_timeout_s=2)
    await store.start()
    writer = AnalyticsWriter(store, batch_size=50, **FAST)  # type: ignore[arg-type]
    total = 3000
    with capture_logs() as logs:
        await writer.start()
        for i in range(total):
            writer.submit_usage(usage(i))
            if i % 20 == 19:
                await asyncio.sleep(0.003)
            if i == 1000:
                written_before = writer.stats.written
                await proxy.stop()
            if i == 2000:
                await eventually(lambda: not writer.stats.store_available)
                await proxy.start()
        await writer.aclose(timeout_s=20)
    await store.aclose()

    assert 0 < written_before < total
    assert writer.stats.failed_attempts > 0
    assert writer.stats.dropped == 0
    assert writer.stats.written == total
    count, distinct, cost, ids = await stored(pg_database, schema)
    assert (count, distinct) == (total, total)
    assert ids == [f"req-{i:06d}" for i in range(total)]
    assert cost == COST * total
    names = [entry["event"] for entry in logs]
    assert "analytics_store_unavailable" in names
    assert "analytics_store_recovered" in names

    reader = PostgresAnalyticsStore(pg_database, schema=schema)
    [row] = await reader.usage(*WINDOW, "model")
    await reader.aclose()
    assert row["requests"] == total
    assert row["prompt_tokens"] == 11 * total
    assert row["cost_usd"] == "0.003702"


async def test_a_gateway_started_before_postgres_catches_up(pg_database: str) -> None:
    schema = f"late_{uuid.uuid4().hex[:10]}"
    target = urlsplit(pg_database)
    late = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432, listen_port=free_port())
    store = PostgresAnalyticsStore(via_port(pg_database, late.port), schema=schema)
    with pytest.raises(StoreUnavailableError):
        await store.start()
    writer = AnalyticsWriter(store, **FAST)  # type: ignore[arg-type]
    await writer.start()
    for i in range(100):
        writer.submit_usage(usage(i))
    await eventually(lambda: writer.stats.failed_attempts > 0)
    await late.start()
    try:
        await eventually(lambda: writer.stats.written == 100)
        assert await store.schema_version() == store.latest_version()  # migrated on first contact
    finally:
        await writer.aclose()
        await store.aclose()
        await late.stop()
    assert (await stored(pg_database, schema))[:2] == (100, 100)


async def test_an_unreachable_postgres_never_shows_its_password() -> None:
    secret = "Sup3r-Secret-Passw0rd"
    store = PostgresAnalyticsStore(
        f"postgresql://gateway:{secret}@127.0.0.1:{free_port()}/analytics", connect_timeout_s=1
    )
    writer = AnalyticsWriter(store, backoff_s=(0.01, 0.02))
    with capture_logs() as logs:
        with pytest.raises(StoreUnavailableError) as caught:
            await store.start()
        writer.submit_usage(usage(0))
        with pytest.raises(StoreUnavailableError):
            await writer.flush()
        await writer.aclose(timeout_s=0.05)
        await store.aclose()
    assert "ConnectionRefusedError" in str(caught.value)
    assert secret not in repr(caught.value)
    assert caught.value.__cause__ is None
    assert secret not in repr(logs)
    assert any(e["event"] == "analytics_store_unavailable" for e in logs)
    assert writer.stats.dropped == 1


async def test_a_locked_sqlite_database_delays_writes_and_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "analytics.db"
    store = SQLiteAnalyticsStore(path, busy_timeout_s=0.02)
    await store.start()
    writer = AnalyticsWriter(store, batch_size=100, **FAST)  # type: ignore[arg-type]
    await writer.start()
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        for i in range(500):
            writer.submit_usage(usage(i))
        await eventually(lambda: writer.stats.failed_attempts >= 2)
        assert writer.stats.written == 0
        blocker.execute("COMMIT")
        await eventually(lambda: writer.stats.written == 500)
    finally:
        blocker.close()
        await writer.aclose()
        await store.aclose()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT count(*) FROM usage_records").fetchone() == (500,)
    finally:
        conn.close()


CHILD_CODE = r"""
import asyncio, signal, sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from ai_gateway.observability.logging import configure_logging
from ai_gateway.stores.analytics_sqlite import SQLiteAnalyticsStore
from ai_gateway.usage.records import UsageRecord
from ai_gateway.usage.writer import AnalyticsWriter

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

async def main(path):
    configure_logging("info")  # to stderr
    store = SQLiteAnalyticsStore(path)
    await store.start()
    writer = AnalyticsWriter(store, max_buffer=1_000_000)
    await writer.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    n = 0
    while not stop.is_set():
        for _ in range(50):
            writer.submit_usage(UsageRecord(
                f"req-{n}", T0, "chat", "fast", "fast", "openai", "fast/0", "gpt", False, 200,
                None, None, 10, 5, 0, 0, 0, Decimal("0.000001234"), 20.0, None, 1, 0))
            n += 1
        await asyncio.sleep(0.001)
    await writer.aclose()
    await store.aclose()
    print(n, writer.stats.written, writer.stats.dropped, flush=True)

asyncio.run(main(sys.argv[1]))
"""


def test_sigterm_under_load_flushes_every_accepted_record(tmp_path: Path) -> None:
    path = tmp_path / "analytics.db"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_CODE, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        child.send_signal(signal.SIGTERM)
        out, _ = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    submitted, written, dropped = (int(v) for v in out.split())
    assert submitted > 1000  # it was under load when the signal came
    assert (written, dropped) == (submitted, 0)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT count(*) FROM usage_records").fetchone() == (submitted,)
    finally:
        conn.close()
