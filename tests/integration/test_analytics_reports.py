"""The analytics and feedback API over each real store (SQLite; PostgreSQL at DATABASE_URL) and
the background writer, on a real socket, fed known usage records: exact groupings, percentiles,
costs per 1k requests, time buckets, the error list and counts, and feedback joined to its
requests' models."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from ai_gateway.stores.analytics_postgres import PostgresAnalyticsStore
from ai_gateway.stores.analytics_sqlite import SQLiteAnalyticsStore
from ai_gateway.usage.records import UsageRecord
from analytics_support import throwaway_database, usage_record
from reports_support import ReportsServer

pytestmark = pytest.mark.integration
T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    with throwaway_database() as url:  # skips (fails under CI) without PostgreSQL
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def reports(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReportsServer]:
    if request.param == "sqlite":
        store: SQLiteAnalyticsStore | PostgresAnalyticsStore = SQLiteAnalyticsStore(
            tmp_path / "analytics.db"
        )
    else:
        schema = f"reports_{uuid.uuid4().hex[:12]}"
        store = PostgresAnalyticsStore(request.getfixturevalue("pg_database"), schema=schema)
    server = ReportsServer(store)
    yield server
    server.stop()


BASE = usage_record(
    "r-0",
    created_at=T0,
    cached_tokens=0,
    cache_write_tokens=0,
    reasoning_tokens=0,
    cost_usd=Decimal("0.0000045"),
)


def known_records() -> list[UsageRecord]:
    """fast: 4 requests in the first hour (one a stream, one a 502); smart: 1 request an hour
    later, with no price."""
    return [
        BASE,
        replace(BASE, request_id="r-1", created_at=T0 + timedelta(minutes=1), latency_ms=200.0),
        replace(
            BASE,
            request_id="r-2",
            created_at=T0 + timedelta(minutes=2),
            latency_ms=300.0,
            stream=True,
            ttft_ms=50.0,
            prompt_tokens=20,
            completion_tokens=7,
            cost_usd=Decimal("0.0000072"),
        ),
        replace(
            BASE,
            request_id="r-err",
            created_at=T0 + timedelta(minutes=3),
            latency_ms=400.0,
            status=502,
            error_type="upstream_error",
            error_code="upstream_error",
            prompt_tokens=0,
            completion_tokens=0,
            cost_usd=None,
        ),
        replace(
            BASE,
            request_id="r-smart",
            created_at=T0 + timedelta(hours=1, minutes=5),
            model="smart",
            served_model="smart",
            provider="anthropic",
            deployment="smart/0",
            latency_ms=1000.0,
            prompt_tokens=100,
            completion_tokens=50,
            cost_usd=None,
        ),
    ]


def test_usage_report_groups_and_totals_exactly(reports: ReportsServer) -> None:
    reports.submit(*known_records())
    body = reports.report("usage", start="24h")
    rows = {row["group"]: row for row in body["data"]}
    assert rows["fast"]["requests"] == 4
    assert rows["fast"]["errors"] == 1
    assert rows["fast"]["prompt_tokens"] == 40
    assert rows["fast"]["cost_usd"] == "0.0000162"
    assert rows["smart"]["cost_usd"] is None
    assert rows["smart"]["unpriced_requests"] == 1
    totals = body["totals"]
    assert (totals["requests"], totals["errors"], totals["total_tokens"]) == (5, 1, 207)
    assert totals["cost_usd"] == "0.0000162"
    assert totals["unpriced_requests"] == 2
    by_provider = reports.report("usage", group_by="provider", start="24h")
    assert [(r["group"], r["requests"]) for r in by_provider["data"]] == [
        ("anthropic", 1),
        ("openai", 4),
    ]
    # A range that ends before the second hour leaves out the later request.
    early = reports.report("usage", start=T0.isoformat(), end=(T0 + timedelta(hours=1)).isoformat())
    assert early["totals"]["requests"] == 4


def test_models_report_has_percentiles_error_rate_and_cost_per_1k(
    reports: ReportsServer,
) -> None:
    reports.submit(*known_records())
    rows = {row["model"]: row for row in reports.report("models", start="24h")["data"]}
    fast = rows["fast"]
    assert fast["deployment"] == "fast/0"
    assert fast["requests"] == 4
    assert fast["error_rate"] == 0.25
    assert fast["p50_latency_ms"] == pytest.approx(250.0)
    assert fast["p95_latency_ms"] == pytest.approx(385.0)
    assert fast["p50_ttft_ms"] == pytest.approx(50.0)
    assert Decimal(fast["cost_per_1k_requests"]) == Decimal("0.00405")
    assert rows["smart"]["cost_per_1k_requests"] is None


def test_errors_report_lists_request_ids_and_counts_by_type(reports: ReportsServer) -> None:
    records = known_records()
    more = [
        replace(
            records[3],
            request_id=f"r-429-{i}",
            created_at=T0 + timedelta(minutes=10 + i),
            status=429,
            error_type="rate_limit_error",
            error_code="upstream_rate_limited",
        )
        for i in range(3)
    ]
    reports.submit(*records, *more)
    body = reports.report("errors", start="24h", limit="2")
    assert body["limit"] == 2
    assert [row["request_id"] for row in body["data"]] == ["r-429-2", "r-429-1"]
    assert body["data"][0]["status"] == 429
    assert body["by_type"] == [
        {"error_type": "rate_limit_error", "count": 3},
        {"error_type": "upstream_error", "count": 1},
    ]
    assert body["total"] == 4


def test_timeseries_buckets_by_model(reports: ReportsServer) -> None:
    reports.submit(*known_records())
    body = reports.report("timeseries", start=T0.isoformat(), end="now", bucket="1h")
    assert body["bucket_s"] == 3600
    points = [(row["bucket"], row["model"], row["requests"]) for row in body["data"]]
    assert points == [
        (T0.isoformat(), "fast", 4),
        ((T0 + timedelta(hours=1)).isoformat(), "smart", 1),
    ]
    assert body["data"][0]["errors"] == 1
    assert body["data"][0]["cost_usd"] == "0.0000162"


def test_feedback_is_stored_through_the_writer_and_reported(reports: ReportsServer) -> None:
    reports.submit(*known_records())  # buffered, not written: the writer knows them
    sent = [("r-0", "up"), ("r-1", 2), ("r-2", 0.5), ("r-smart", True)]
    for request_id, score in sent:
        resp = reports.http.post(
            "/ai/feedback", json={"request_id": request_id, "score": score, "tags": ["t"]}
        )
        assert resp.status_code == 201, resp.text
    assert resp.json()["score"] == 1.0
    unknown = reports.http.post("/ai/feedback", json={"request_id": "r-404", "score": "up"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["param"] == "request_id"
    body = reports.report("feedback", start="24h")
    rows = {row["group"]: row for row in body["data"]}
    assert rows["fast"]["count"] == 3
    assert rows["fast"]["mean_score"] == pytest.approx((1.0 + 0.25 + 0.5) / 3)
    assert (rows["fast"]["positive"], rows["fast"]["negative"]) == (1, 1)
    assert rows["smart"]["count"] == 1
    assert body["totals"]["count"] == 4
    assert body["totals"]["mean_score"] == pytest.approx(2.75 / 4)
    # Once written (the report flushed), a stored request still takes feedback.
    assert (
        reports.http.post("/ai/feedback", json={"request_id": "r-0", "score": 1}).status_code == 201
    )


def test_bad_parameters_answer_400_over_the_wire(reports: ReportsServer) -> None:
    resp = reports.http.get("/ai/analytics/usage", params={"start": "yesterday"})
    assert resp.status_code == 400
    assert resp.headers["content-type"] == "application/json"
    assert resp.json()["error"]["param"] == "start"


def test_cache_hit_rate_and_savings_in_the_reports(reports: ReportsServer) -> None:
    """One request with each cache status (through the writer), then the usage report's rows and
    totals, each request's record, and the time buckets."""
    savings = {"hit": (40, Decimal("0.000012")), "semantic-hit": (25, Decimal("0.0000075"))}
    statuses = ("off", "miss", "hit", "semantic-hit", "bypass", "refresh")
    records = [
        replace(
            BASE,
            request_id=f"c-{status}",
            client_request_id="cache-run",
            created_at=T0 + timedelta(minutes=i),
            cache_status=status,
            saved_tokens=savings.get(status, (0, None))[0],
            saved_cost_usd=savings.get(status, (0, None))[1],
        )
        for i, status in enumerate(statuses)
    ]
    smart = known_records()[-1]  # an hour later, no cache
    reports.submit(*records, smart)
    cache = ("cache_hits", "cache_lookups", "cache_hit_rate", "saved_tokens", "saved_cost_usd")
    body = reports.report("usage", start="24h")
    rows = {row["group"]: row for row in body["data"]}
    assert [rows["fast"][k] for k in cache] == [2, 4, 0.5, 65, "0.0000195"]
    assert [rows["smart"][k] for k in cache] == [0, 0, None, 0, None]
    assert [body["totals"][k] for k in cache] == [2, 4, 0.5, 65, "0.0000195"]
    assert body["totals"]["requests"] == 7
    # A range with no lookups has no hit rate (not 0%), and saved nothing.
    later = reports.report("usage", start=(T0 + timedelta(hours=1)).isoformat(), end="now")
    assert [later["totals"][k] for k in cache] == [0, 0, None, 0, "0"]

    found = reports.report("requests", start="24h", client_request_id="cache-run", limit="10")
    by_id = {row["request_id"]: row for row in found["data"]}
    assert {rid: row["cache_status"] for rid, row in by_id.items()} == {
        f"c-{status}": status for status in statuses
    }
    assert (by_id["c-hit"]["saved_tokens"], by_id["c-hit"]["saved_cost_usd"]) == (40, "0.000012")
    assert (by_id["c-miss"]["saved_tokens"], by_id["c-miss"]["saved_cost_usd"]) == (0, None)

    series = reports.report("timeseries", start=T0.isoformat(), end="now", bucket="1h")
    points = {(row["bucket"], row["model"]): row for row in series["data"]}
    first = points[(T0.isoformat(), "fast")]
    assert [first[k] for k in cache] == [2, 4, 0.5, 65, "0.0000195"]
    second = points[((T0 + timedelta(hours=1)).isoformat(), "smart")]
    assert [second[k] for k in cache] == [0, 0, None, 0, None]
