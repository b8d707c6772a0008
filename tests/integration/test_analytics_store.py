"""Both analytics backends on real databases: SQLite in a temporary directory, PostgreSQL in a
throwaway database created for this run (each test in its own schema) and dropped at the end."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from structlog.testing import capture_logs

from ai_gateway.stores.analytics_postgres import PostgresAnalyticsStore
from ai_gateway.stores.analytics_sqlite import SQLiteAnalyticsStore
from ai_gateway.stores.migrations import check
from ai_gateway.stores.migrations import postgres as pg_migrations
from ai_gateway.stores.migrations import sqlite as sqlite_migrations
from ai_gateway.usage.records import FeedbackRecord
from ai_gateway.usage.writer import AnalyticsWriter
from analytics_support import T0, throwaway_database
from analytics_support import usage_record as usage

DAY = (T0 - timedelta(hours=12), T0 + timedelta(hours=12))
Store = SQLiteAnalyticsStore | PostgresAnalyticsStore


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    with throwaway_database() as url:
        yield url


def new_store(request: pytest.FixtureRequest, backend: str, tmp_path: Path, tag: str) -> Store:
    if backend == "sqlite":
        return SQLiteAnalyticsStore(tmp_path / f"{tag}.db")
    return PostgresAnalyticsStore(request.getfixturevalue("pg_database"), schema=f"t_{tag}")


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path
) -> AsyncIterator[Store]:
    started = new_store(request, backend, tmp_path, uuid.uuid4().hex[:12])
    await started.start()
    yield started
    await started.aclose()


def fb(rid: str, score: float, at: datetime = T0) -> FeedbackRecord:
    return FeedbackRecord(rid, at, score, str(score), None, ("tag",))


# --- migrations ----------------------------------------------------------------------------------


def test_migrations_are_numbered_one_to_n() -> None:
    check(sqlite_migrations.MIGRATIONS)
    check(pg_migrations.MIGRATIONS)
    with pytest.raises(ValueError, match=r"1\.\.n"):
        check((*sqlite_migrations.MIGRATIONS, sqlite_migrations.MIGRATIONS[0]))


async def test_fresh_database_migrates_and_a_second_start_is_a_no_op(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:12]
    first = new_store(request, backend, tmp_path, tag)
    with capture_logs() as logs:
        await first.start()
    assert [e["versions"] for e in logs if e["event"] == "analytics_schema_migrated"] == [
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    ]
    assert await first.schema_version() == first.latest_version() == 10
    await first.write_usage([usage("kept")])
    await first.start()  # again on the same store
    await first.aclose()

    second = new_store(request, backend, tmp_path, tag)  # a restarted gateway
    with capture_logs() as logs:
        await second.start()
    assert not [e for e in logs if e["event"] == "analytics_schema_migrated"]
    assert await second.schema_version() == 10
    assert await second.has_request("kept")
    await second.aclose()


async def test_two_instances_starting_at_once_migrate_once(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:12]
    stores = [new_store(request, backend, tmp_path, tag) for _ in range(3)]
    with capture_logs() as logs:
        await asyncio.gather(*(s.start() for s in stores))
    assert len([e for e in logs if e["event"] == "analytics_schema_migrated"]) == 1
    for started in stores:
        assert await started.schema_version() == 10
        await started.aclose()


# --- writes --------------------------------------------------------------------------------------


async def test_rewriting_a_batch_stores_each_request_once(store: Store) -> None:
    batch = [usage(f"r{i}") for i in range(50)]
    await store.write_usage(batch)
    await store.write_usage([*batch[25:], *(usage(f"r{i}") for i in range(50, 60))])
    await store.write_feedback([fb("r1", 1.0)])
    await store.write_feedback([fb("r1", 1.0)])  # the same feedback record, retried
    [row] = await store.usage(*DAY, "model")
    assert row["requests"] == 60
    assert row["prompt_tokens"] == 600
    assert await store.has_request("r59")
    assert not await store.has_request("r60")
    [feedback] = await store.feedback(*DAY, "model")
    assert feedback["count"] == 1


async def test_a_request_is_found_for_the_user_who_made_it(store: Store) -> None:
    await store.write_usage([usage("mine", user="alice"), usage("anonymous")])
    assert await store.has_request("mine", user="alice")
    assert not await store.has_request("mine", user="bob")
    assert await store.has_request("mine")
    assert not await store.has_request("anonymous", user="alice")


async def test_costs_sum_exactly(store: Store) -> None:
    tiny = [usage(f"t{i}", model="tiny") for i in range(1000)]  # 0.000001234 each
    tenths = [usage(f"d{i}", model="tenths", cost_usd=Decimal("0.1")) for i in range(3)]
    wide = [
        usage("w1", model="wide", cost_usd=Decimal("12345678901234567890.123456789")),
        usage("w2", model="wide", cost_usd=Decimal("0.000000000000000001")),
        usage("w3", model="wide", cost_usd=Decimal("1E-7")),
    ]
    unpriced = [usage(f"u{i}", model="unpriced", cost_usd=None) for i in range(2)]
    mixed = [usage("m1", model="mixed", cost_usd=None), usage("m2", model="mixed")]
    await store.write_usage([*tiny, *tenths, *wide, *unpriced, *mixed])
    rows = {row["group"]: row for row in await store.usage(*DAY, "model")}
    assert rows["tiny"]["cost_usd"] == "0.001234"
    assert rows["tenths"]["cost_usd"] == "0.3"  # a float sum would give 0.30000000000000004
    assert rows["wide"]["cost_usd"] == "12345678901234567890.123456889000000001"
    assert rows["unpriced"]["cost_usd"] is None
    assert rows["unpriced"]["unpriced_requests"] == 2
    assert rows["mixed"]["cost_usd"] == "0.000001234"
    assert rows["mixed"]["unpriced_requests"] == 1
    [model] = [m for m in await store.models(*DAY) if m["model"] == "fast"]
    assert model["cost_usd"] == "12345678901234567890.424692123000000001"
    assert model["cost_per_1k_requests"] == "12223444456667889000.4204872505"  # x 1000 / 1010
    series = {row["model"]: row["cost_usd"] for row in await store.timeseries(*DAY, 3600)}
    assert series == {model: row["cost_usd"] for model, row in rows.items()}


async def test_usage_by_every_grouping(store: Store) -> None:
    records = [
        usage("a", model="fast", provider="openai", user="ann", key_id="k1", deployment="fast/0"),
        usage(
            "b",
            model="fast",
            provider="anthropic",
            user="bob",
            key_id="k1",
            deployment="fast/1",
            created_at=T0 + timedelta(days=1),
            status=429,
            error_type="rate_limit_error",
        ),
        usage(
            "c",
            model="smart",
            provider="openai",
            user=None,
            key_id=None,
            deployment="smart/0",
            stream=True,
            error_type="api_error",  # a stream that failed mid-way: 200, but an error
        ),
        usage("d", model="smart", provider="", deployment="", status=400, error_type=None),
    ]
    await store.write_usage(records)
    window = (T0 - timedelta(days=1), T0 + timedelta(days=2))

    async def groups(group_by: Any) -> dict[Any, tuple[int, int]]:
        rows = await store.usage(*window, group_by)
        return {row["group"]: (row["requests"], row["errors"]) for row in rows}

    assert await groups("model") == {"fast": (2, 1), "smart": (2, 2)}
    assert await groups("provider") == {"": (1, 1), "anthropic": (1, 1), "openai": (2, 1)}
    assert await groups("user") == {None: (2, 2), "ann": (1, 0), "bob": (1, 1)}
    assert await groups("key") == {None: (2, 2), "k1": (2, 1)}
    assert await groups("day") == {"2025-03-01": (3, 2), "2025-03-02": (1, 1)}
    assert await groups("deployment") == {
        "": (1, 1),
        "fast/0": (1, 0),
        "fast/1": (1, 1),
        "smart/0": (1, 1),
    }
    rows = await store.usage(*window, "user")
    assert [row["group"] for row in rows] == [None, "ann", "bob"]  # ordered, no group first
    assert rows[1] == {
        "group": "ann",
        "requests": 1,
        "errors": 0,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "cached_tokens": 2,
        "cache_write_tokens": 1,
        "reasoning_tokens": 3,
        "cost_usd": "0.000001234",
        "unpriced_requests": 0,
        "cache_hits": 0,
        "cache_lookups": 0,
        "cache_hit_rate": None,
        "saved_tokens": 0,
        "saved_cost_usd": None,
    }


async def test_the_window_includes_its_start_and_excludes_its_end(store: Store) -> None:
    await store.write_usage(
        [
            usage("before", created_at=T0 - timedelta(microseconds=1)),
            usage("start", created_at=T0),
            usage("inside", created_at=T0 + timedelta(minutes=59)),
            usage("end", created_at=T0 + timedelta(hours=1)),
        ]
    )
    [row] = await store.usage(T0, T0 + timedelta(hours=1), "model")
    assert row["requests"] == 2


async def test_models_percentiles_and_rates_on_known_data(store: Store) -> None:
    streamed = [
        usage(f"s{i}", stream=True, latency_ms=float(i), ttft_ms=float(i) / 10)
        for i in range(1, 101)
    ]
    plain = [
        usage(f"p{i}", deployment="fast/1", latency_ms=float(v), status=500 if i == 0 else 200)
        for i, v in enumerate((10, 20, 30, 40))
    ]
    await store.write_usage([*streamed, *plain])
    rows = {row["deployment"]: row for row in await store.models(*DAY)}
    first, second = rows["fast/0"], rows["fast/1"]
    assert first["requests"] == 100
    assert first["error_rate"] == 0
    assert first["p50_latency_ms"] == pytest.approx(50.5)
    assert first["p95_latency_ms"] == pytest.approx(95.05)
    assert first["p50_ttft_ms"] == pytest.approx(5.05)
    assert first["p95_ttft_ms"] == pytest.approx(9.505)
    assert first["cost_usd"] == "0.0001234"
    assert first["cost_per_1k_requests"] == "0.001234"
    assert second["requests"] == 4
    assert second["error_rate"] == 0.25
    assert second["p50_latency_ms"] == pytest.approx(25.0)
    assert second["p95_latency_ms"] == pytest.approx(38.5)
    assert second["p50_ttft_ms"] is None
    assert second["p95_ttft_ms"] is None
    assert second["model"] == "fast"
    assert second["provider"] == "openai"


async def test_errors_newest_first_with_a_limit_and_counts_by_type(store: Store) -> None:
    local = timezone(timedelta(hours=5))
    await store.write_usage(
        [
            usage("ok", created_at=T0 + timedelta(minutes=5)),
            usage("e1", created_at=T0, status=429, error_type="rate_limit_error"),
            usage("e2", created_at=T0 + timedelta(minutes=1), status=502, error_type="api_error"),
            usage(
                "e3",
                created_at=(T0 + timedelta(minutes=2)).astimezone(local),
                status=429,
                error_type="rate_limit_error",
                error_code="rate_limit_exceeded",
            ),
        ]
    )
    rows = await store.errors(*DAY, 2)
    assert [row["request_id"] for row in rows] == ["e3", "e2"]
    assert rows[0] == {
        "request_id": "e3",
        "created_at": "2025-03-01T12:02:00+00:00",
        "model": "fast",
        "provider": "openai",
        "status": 429,
        "error_type": "rate_limit_error",
        "error_code": "rate_limit_exceeded",
    }
    assert await store.error_counts(*DAY) == [
        {"error_type": "rate_limit_error", "count": 2},
        {"error_type": "api_error", "count": 1},
    ]


async def test_feedback_grouped_by_model_template_and_day(store: Store) -> None:
    await store.write_usage(
        [usage("a", model="fast", template="tpl"), usage("b", model="smart", template=None)]
    )
    await store.write_feedback(
        [
            fb("a", 1.0),
            fb("a", 0.0, T0 + timedelta(seconds=1)),
            fb("b", 0.75),
            fb("b", 0.5, T0 + timedelta(seconds=1)),
            fb("gone", 0.25, T0 + timedelta(days=1)),  # its usage record was purged
        ]
    )
    window = (T0 - timedelta(days=1), T0 + timedelta(days=2))
    by_model = await store.feedback(*window, "model")
    assert by_model == [
        {"group": None, "count": 1, "mean_score": 0.25, "positive": 0, "negative": 1},
        {"group": "fast", "count": 2, "mean_score": 0.5, "positive": 1, "negative": 1},
        {"group": "smart", "count": 2, "mean_score": 0.625, "positive": 1, "negative": 0},
    ]
    by_template = {row["group"]: row["count"] for row in await store.feedback(*window, "template")}
    assert by_template == {None: 3, "tpl": 2}
    by_day = {row["group"]: row["count"] for row in await store.feedback(*window, "day")}
    assert by_day == {"2025-03-01": 4, "2025-03-02": 1}


async def test_timeseries_per_bucket_and_model(store: Store) -> None:
    await store.write_usage(
        [
            usage("a", created_at=T0 + timedelta(seconds=1), latency_ms=10.0),
            usage("b", created_at=T0 + timedelta(seconds=299), latency_ms=30.0, status=500),
            usage("c", created_at=T0 + timedelta(seconds=300), model="smart", cost_usd=None),
            usage("d", created_at=T0 + timedelta(seconds=301), latency_ms=7.0),
        ]
    )
    rows = await store.timeseries(T0, T0 + timedelta(hours=1), 300)
    assert [(r["bucket"], r["model"], r["requests"], r["errors"]) for r in rows] == [
        ("2025-03-01T12:00:00+00:00", "fast", 2, 1),
        ("2025-03-01T12:05:00+00:00", "fast", 1, 0),
        ("2025-03-01T12:05:00+00:00", "smart", 1, 0),
    ]
    assert rows[0]["p50_latency_ms"] == pytest.approx(20.0)
    assert rows[0]["p95_latency_ms"] == pytest.approx(29.0)
    assert rows[0]["prompt_tokens"] == 20
    assert rows[0]["completion_tokens"] == 10
    assert rows[0]["cost_usd"] == "0.000002468"
    assert rows[2]["cost_usd"] is None


async def test_purge_deletes_only_older_rows(store: Store) -> None:
    old, new = T0 - timedelta(days=40), T0
    await store.write_usage([usage("old1", created_at=old), usage("old2", created_at=old)])
    await store.write_usage([usage("new", created_at=new)])
    await store.write_feedback([fb("old1", 1.0, old), fb("new", 1.0, new)])
    assert await store.purge(T0 - timedelta(days=30)) == 3
    assert not await store.has_request("old1")
    assert await store.has_request("new")
    assert await store.purge(T0 - timedelta(days=30)) == 0
    [row] = await store.feedback(*DAY, "model")
    assert row["count"] == 1


async def test_awkward_text_is_stored_not_rejected(store: Store) -> None:
    await store.write_usage([usage("nul", model="bad\x00model"), usage("long", model="m" * 5000)])
    models = {row["group"] for row in await store.usage(*DAY, "model")}
    assert models == {"bad\ufffdmodel", "m" * 1024}


async def test_writer_aclose_flushes_everything_into_the_store(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:12]
    store = new_store(request, backend, tmp_path, tag)
    await store.start()
    writer = AnalyticsWriter(store, batch_size=100, flush_interval_s=60.0)
    await writer.start()
    for i in range(1050):
        writer.submit_usage(usage(f"r{i}"))
    writer.submit_feedback(fb("r1", 1.0))
    await writer.aclose()
    await store.aclose()
    reopened = new_store(request, backend, tmp_path, tag)
    [row] = await reopened.usage(*DAY, "model")
    assert row["requests"] == 1050
    assert row["cost_usd"] == "0.0012957"
    assert (await reopened.feedback(*DAY, "model"))[0]["count"] == 1
    assert writer.stats.written == 1051
    await reopened.aclose()


# --- backend specifics ---------------------------------------------------------------------------


async def test_sqlite_uses_wal_and_stores_costs_as_text(tmp_path: Path) -> None:
    store = SQLiteAnalyticsStore(tmp_path / "a.db")
    await store.start()
    await store.write_usage([usage("r", cost_usd=Decimal("0.000001234"))])
    await store.aclose()
    conn = sqlite3.connect(tmp_path / "a.db")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT cost_usd, typeof(cost_usd) FROM usage_records").fetchone() == (
            "0.000001234",
            "text",
        )
    finally:
        conn.close()


async def test_sqlite_stores_absent_values_as_null_and_present_ones_as_given(
    tmp_path: Path,
) -> None:
    store = SQLiteAnalyticsStore(tmp_path / "a.db")
    await store.start()
    present = {"error_type": "api_error", "error_code": "upstream_error", "ttft_ms": 12.5}
    present |= {"user": "u", "key_id": "k", "team": "t", "template": "tpl"}
    await store.write_usage(
        [usage("absent", cost_usd=None, stream=True), usage("present", **present)]
    )
    await store.aclose()
    columns = ("error_type", "error_code", "cost_usd", "ttft_ms", "user_id", "key_id", "team")
    columns += ("template", "stream")
    conn = sqlite3.connect(tmp_path / "a.db")
    try:
        rows = {
            row[0]: row[1:]
            for row in conn.execute(
                f"SELECT request_id, {', '.join(columns)} FROM usage_records"  # noqa: S608
            )
        }
        types = {
            row[0]: row[1:]
            for row in conn.execute(
                f"SELECT request_id, {', '.join(f'typeof({c})' for c in columns)} "  # noqa: S608
                "FROM usage_records"
            )
        }
    finally:
        conn.close()
    assert rows["absent"] == (None,) * 8 + (1,)
    assert types["absent"] == ("null",) * 8 + ("integer",)
    assert rows["present"] == (
        *("api_error", "upstream_error", "0.000001234", 12.5, "u", "k", "t", "tpl"),
        0,
    )
    assert types["present"] == ("text", "text", "text", "real", *("text",) * 4, "integer")


async def test_sqlite_writes_a_batch_of_any_size_once_each(tmp_path: Path) -> None:
    # Rows go in many per statement: a batch that is not a whole number of statements, and
    # a request id twice in one batch, are stored once each.
    store = SQLiteAnalyticsStore(tmp_path / "a.db")
    await store.start()
    records = [usage(f"r{i}") for i in range(257)]
    await store.write_usage([*records, usage("r3")])
    await store.write_usage(records[:150])  # a retried batch
    [row] = await store.usage(*DAY, "model")
    await store.aclose()
    assert row["requests"] == 257


# --- request ids: the gateway's key, the client's for correlation ---------------------------------


async def test_a_client_request_id_sent_many_times_keeps_every_record(store: Store) -> None:
    batch = [
        usage(f"gw-{i}", client_request_id="retry-me", usage_estimated=i == 2) for i in range(4)
    ]
    await store.write_usage(batch)
    await store.write_usage(batch)  # re-sent after a lost acknowledgement
    [row] = await store.usage(*DAY, "model")
    assert row["requests"] == 4
    found = await store.requests(*DAY, "client_request_id", "retry-me", 10)
    assert sorted(r["request_id"] for r in found) == ["gw-0", "gw-1", "gw-2", "gw-3"]
    assert {r["client_request_id"] for r in found} == {"retry-me"}
    assert [r["request_id"] for r in found if r["usage_estimated"]] == ["gw-2"]
    [one] = await store.requests(*DAY, "request_id", "gw-1", 10)
    assert one["cost_usd"] == "0.000001234"
    assert one["client_request_id"] == "retry-me"
    assert len(await store.requests(*DAY, "client_request_id", "retry-me", 2)) == 2
    assert await store.requests(*DAY, "client_request_id", "gw-1", 10) == []


async def _raw(request: pytest.FixtureRequest, store: Store, sql: str) -> None:
    """Run `sql` on the store's database, beside the store."""
    if isinstance(store, SQLiteAnalyticsStore):
        with sqlite3.connect(store.path) as conn:
            conn.execute(sql)
        return
    dsn = request.getfixturevalue("pg_database")
    conn = await asyncpg.connect(dsn, server_settings={"search_path": store.schema})
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def test_a_version_3_database_gains_the_client_id_and_keeps_its_rows(
    request: pytest.FixtureRequest,
    backend: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tag = uuid.uuid4().hex[:12]
    module = sqlite_migrations if backend == "sqlite" else pg_migrations
    with monkeypatch.context() as patch:
        patch.setattr(module, "MIGRATIONS", module.MIGRATIONS[:3])  # the previous release
        old = new_store(request, backend, tmp_path, tag)
        await old.start()
        assert await old.schema_version() == 3
        stamp = "1740830400000000" if backend == "sqlite" else "'2025-03-01T12:00:00Z'"
        flag = "0" if backend == "sqlite" else "false"
        columns = (
            "request_id, created_at, route, model, served_model, provider, deployment, "
            "upstream_model, stream, status, prompt_tokens, completion_tokens, cached_tokens, "
            "cache_write_tokens, reasoning_tokens, latency_ms, attempts, fallbacks, cache_status"
        )
        values = (
            f"'client-chosen', {stamp}, 'chat', 'fast', 'fast', 'openai', 'fast/0', "
            f"'gpt-4o-mini', {flag}, 200, 5, 7, 0, 0, 0, 1.5, 1, 0, 'off'"
        )
        insert = f"INSERT INTO usage_records ({columns}) VALUES ({values})"  # noqa: S608
        await _raw(request, old, insert)
        await old.aclose()
    upgraded = new_store(request, backend, tmp_path, tag)
    with capture_logs() as logs:
        await upgraded.start()
    migrated = [e["versions"] for e in logs if e["event"] == "analytics_schema_migrated"]
    assert migrated == [[4, 5, 6, 7, 8, 9, 10]]
    assert await upgraded.has_request("client-chosen")
    await upgraded.write_usage([usage("gw-new", client_request_id="client-chosen")])
    found = await upgraded.requests(*DAY, "client_request_id", "client-chosen", 10)
    assert [r["request_id"] for r in found] == ["gw-new"]
    [old_row] = await upgraded.requests(*DAY, "request_id", "client-chosen", 10)
    assert old_row["client_request_id"] is None
    assert old_row["usage_estimated"] is False
    [row] = await upgraded.usage(*DAY, "model")
    assert row["requests"] == 2
    await upgraded.aclose()


async def test_a_version_4_database_gains_the_cache_savings_and_keeps_its_rows(
    request: pytest.FixtureRequest,
    backend: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tag = uuid.uuid4().hex[:12]
    module = sqlite_migrations if backend == "sqlite" else pg_migrations
    with monkeypatch.context() as patch:
        patch.setattr(module, "MIGRATIONS", module.MIGRATIONS[:4])  # the previous release
        old = new_store(request, backend, tmp_path, tag)
        await old.start()
        assert await old.schema_version() == 4
        stamp = "1740830400000000" if backend == "sqlite" else "'2025-03-01T12:00:00Z'"
        flag = "0" if backend == "sqlite" else "false"
        columns = (
            "request_id, created_at, route, model, served_model, provider, deployment, "
            "upstream_model, stream, status, prompt_tokens, completion_tokens, cached_tokens, "
            "cache_write_tokens, reasoning_tokens, cost_usd, latency_ms, attempts, fallbacks, "
            "cache_status, client_request_id, usage_estimated"
        )
        values = (
            f"'before-5', {stamp}, 'chat', 'fast', 'fast', 'openai', 'fast/0', "
            f"'gpt-4o-mini', {flag}, 200, 5, 7, 0, 0, 0, '0.5', 1.5, 1, 0, 'miss', 'c', {flag}"
        )
        insert = f"INSERT INTO usage_records ({columns}) VALUES ({values})"  # noqa: S608
        await _raw(request, old, insert)
        await old.aclose()
    upgraded = new_store(request, backend, tmp_path, tag)
    with capture_logs() as logs:
        await upgraded.start()
    assert [e["versions"] for e in logs if e["event"] == "analytics_schema_migrated"] == [
        [5, 6, 7, 8, 9, 10]
    ]
    [old_row] = await upgraded.requests(*DAY, "request_id", "before-5", 10)
    assert (old_row["cache_status"], old_row["saved_tokens"], old_row["saved_cost_usd"]) == (
        "miss",
        0,
        None,
    )
    assert old_row["cost_usd"] == "0.5"
    hit = usage("after-5", cache_status="hit", saved_tokens=12, saved_cost_usd=Decimal("0.5"))
    await upgraded.write_usage([hit])
    [row] = await upgraded.usage(*DAY, "model")
    assert (row["requests"], row["cache_hits"], row["cache_lookups"]) == (2, 1, 2)
    assert (row["saved_tokens"], row["saved_cost_usd"]) == (12, "0.5")
    await upgraded.aclose()
