"""The response cache's statuses and savings through both analytics backends on real databases
(SQLite in a temporary directory; PostgreSQL in a throwaway database, each test in its own
schema): hits out of lookups, exact saved costs, per request and per time bucket. (Over HTTP:
test_analytics_reports.py; the migration that adds the columns: test_analytics_store.py.)"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ai_gateway.stores.analytics_postgres import PostgresAnalyticsStore
from ai_gateway.stores.analytics_sqlite import SQLiteAnalyticsStore
from ai_gateway.usage.records import UsageRecord
from ai_gateway.usage.writer import AnalyticsWriter
from analytics_support import T0, throwaway_database
from analytics_support import usage_record as usage

DAY = (T0 - timedelta(hours=12), T0 + timedelta(hours=12))
CACHE_KEYS = ("cache_hits", "cache_lookups", "cache_hit_rate", "saved_tokens", "saved_cost_usd")
Store = SQLiteAnalyticsStore | PostgresAnalyticsStore


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    with throwaway_database() as url:  # skips (fails under CI) without PostgreSQL
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        started: Store = SQLiteAnalyticsStore(tmp_path / "analytics.db")
    else:
        dsn = request.getfixturevalue("pg_database")
        started = PostgresAnalyticsStore(dsn, schema=f"cache_{uuid.uuid4().hex[:12]}")
    await started.start()
    yield started
    await started.aclose()


def cache_records() -> list[UsageRecord]:
    """fast: a request with each cache status, and an unpriced hit; smart: no cache at all."""
    return [
        usage("off"),
        usage("miss", cache_status="miss"),
        usage("hit", cache_status="hit", saved_tokens=40, saved_cost_usd=Decimal("0.1")),
        usage(
            "semantic",
            cache_status="semantic-hit",
            saved_tokens=25,
            saved_cost_usd=Decimal("0.2"),
        ),
        usage("bypass", cache_status="bypass"),
        usage("refresh", cache_status="refresh"),
        usage("hit-unpriced", cache_status="hit", saved_tokens=10, saved_cost_usd=None),
        usage("smart-off", model="smart"),
        usage("smart-bypass", model="smart", cache_status="bypass"),
    ]


async def test_hits_are_counted_out_of_lookups_and_savings_summed_exactly(store: Store) -> None:
    await store.write_usage(cache_records())
    rows = {row["group"]: row for row in await store.usage(*DAY, "model")}
    assert {k: rows["fast"][k] for k in CACHE_KEYS} == {
        "cache_hits": 3,  # hit, semantic-hit and the unpriced hit
        "cache_lookups": 5,  # those and miss and refresh; not off or bypass
        "cache_hit_rate": 0.6,
        "saved_tokens": 75,
        "saved_cost_usd": "0.3",  # exact; the unpriced hit adds nothing
    }
    assert rows["fast"]["requests"] == 7
    assert {k: rows["smart"][k] for k in CACHE_KEYS} == {
        "cache_hits": 0,
        "cache_lookups": 0,
        "cache_hit_rate": None,  # never looked up: no rate, rather than 0%
        "saved_tokens": 0,
        "saved_cost_usd": None,
    }
    [by_day] = await store.usage(*DAY, "day")
    assert (by_day["cache_hits"], by_day["cache_lookups"], by_day["saved_tokens"]) == (3, 5, 75)


async def test_each_request_has_its_cache_status_and_what_it_saved(store: Store) -> None:
    records = cache_records()
    await store.write_usage(records)
    for record in records:
        [row] = await store.requests(*DAY, "request_id", record.request_id, 10)
        expected_cost = None if record.saved_cost_usd is None else str(record.saved_cost_usd)
        assert (row["cache_status"], row["saved_tokens"], row["saved_cost_usd"]) == (
            record.cache_status,
            record.saved_tokens,
            expected_cost,
        ), record.request_id


async def test_timeseries_has_hits_and_savings_per_bucket_and_model(store: Store) -> None:
    later = T0 + timedelta(minutes=5)
    await store.write_usage(
        [
            usage("a", cache_status="miss"),
            usage("b", cache_status="hit", saved_tokens=15, saved_cost_usd=Decimal("0.0000123")),
            usage("c", created_at=later, cache_status="semantic-hit", saved_tokens=9),
            usage("d", created_at=later, cache_status="bypass"),
            usage("e", created_at=later, model="smart"),
        ]
    )
    rows = await store.timeseries(T0, T0 + timedelta(hours=1), 300)
    got = [(r["bucket"][11:16], r["model"], *(r[k] for k in CACHE_KEYS)) for r in rows]
    assert got == [
        ("12:00", "fast", 1, 2, 0.5, 15, "0.0000123"),
        ("12:05", "fast", 1, 1, 1.0, 9, None),
        ("12:05", "smart", 0, 0, None, 0, None),
    ]


async def test_the_writer_stores_the_cache_fields_it_is_given(store: Store) -> None:
    writer = AnalyticsWriter(store, batch_size=3, flush_interval_s=60.0)
    await writer.start()
    for record in cache_records():
        writer.submit_usage(record)
    await writer.aclose()
    assert writer.stats.written == len(cache_records())
    [semantic] = await store.requests(*DAY, "request_id", "semantic", 1)
    assert (semantic["cache_status"], semantic["saved_tokens"]) == ("semantic-hit", 25)
    totals: dict[str, Any] = {}
    for row in await store.usage(*DAY, "provider"):
        for key in ("cache_hits", "cache_lookups", "saved_tokens"):
            totals[key] = totals.get(key, 0) + row[key]
    assert totals == {"cache_hits": 3, "cache_lookups": 5, "saved_tokens": 75}
