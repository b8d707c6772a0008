"""The prompt template report on both analytics backends (SQLite in a temporary directory,
PostgreSQL in a throwaway database, each test in its own schema), fed known usage and feedback
records: per template version, exact sums, the same percentiles, errors and feedback joined
through the request id."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from ai_gateway.stores.analytics_postgres import PostgresAnalyticsStore
from ai_gateway.stores.analytics_sqlite import SQLiteAnalyticsStore
from ai_gateway.usage.records import FeedbackRecord
from analytics_support import T0, throwaway_database
from analytics_support import usage_record as usage

pytestmark = pytest.mark.integration

DAY = (T0 - timedelta(hours=12), T0 + timedelta(hours=12))
Store = SQLiteAnalyticsStore | PostgresAnalyticsStore


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    with throwaway_database() as url:  # skips (fails under CI) without PostgreSQL
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    tag = uuid.uuid4().hex[:12]
    started: Store
    if request.param == "sqlite":
        started = SQLiteAnalyticsStore(tmp_path / f"{tag}.db")
    else:
        started = PostgresAnalyticsStore(request.getfixturevalue("pg_database"), schema=f"p_{tag}")
    await started.start()
    yield started
    await started.aclose()


def fb(rid: str, score: float, after_s: int = 60) -> FeedbackRecord:
    return FeedbackRecord(rid, T0 + timedelta(seconds=after_s), score, str(score), None, ())


async def known_traffic(store: Store) -> None:
    """review@1: three requests, one a 502 without a price; review@2: two priced requests, one a
    stream that failed after its 200; summary@1: one request, no feedback. Besides them: a
    review@1 request two days earlier and a request without a template, both rated."""
    failed = {"status": 502, "error_type": "upstream_error", "cost_usd": None}
    await store.write_usage(
        [
            usage("r1", prompt_id="review", prompt_version=1, latency_ms=100.0),
            usage("r2", prompt_id="review", prompt_version=1, latency_ms=200.0),
            usage(
                "r3",
                prompt_id="review",
                prompt_version=1,
                latency_ms=300.0,
                prompt_tokens=0,
                completion_tokens=0,
                **failed,
            ),
            usage(
                "r4", prompt_id="review", prompt_version=2, latency_ms=50.0, cost_usd=Decimal("0.1")
            ),
            usage(
                "r5",
                prompt_id="review",
                prompt_version=2,
                latency_ms=150.0,
                cost_usd=Decimal("0.2"),
                stream=True,
                error_type="upstream_error",
                prompt_tokens=30,
                completion_tokens=0,
            ),
            usage("s1", prompt_id="summary", prompt_version=1, latency_ms=10.0),
            usage(
                "old",
                prompt_id="review",
                prompt_version=1,
                created_at=T0 - timedelta(days=2),
                latency_ms=9999.0,
            ),
            usage("plain", latency_ms=1.0),
        ]
    )
    await store.write_feedback(
        [
            fb("r1", 1.0),
            fb("r1", 0.5, after_s=120),  # rated twice: two feedback rows, still one request
            fb("r2", 0.0),
            fb("r4", 0.75),
            fb("old", 1.0, after_s=-2 * 86400 + 60),
            fb("plain", 1.0),
            fb("unknown", 0.0),  # its usage record was purged
        ]
    )


async def test_each_template_version_is_a_row_with_exact_sums(store: Store) -> None:
    await known_traffic(store)
    rows = await store.prompts(*DAY)
    assert [(r["prompt_id"], r["prompt_version"]) for r in rows] == [
        ("review", 1),
        ("review", 2),
        ("summary", 1),
    ]
    first, second, third = rows
    assert first == {
        "prompt_id": "review",
        "prompt_version": 1,
        "requests": 3,
        "errors": 1,
        "error_rate": pytest.approx(1 / 3),
        "prompt_tokens": 20,
        "completion_tokens": 10,
        "total_tokens": 30,
        "cost_usd": "0.000002468",
        "unpriced_requests": 1,
        "mean_latency_ms": pytest.approx(200.0),
        "p50_latency_ms": pytest.approx(200.0),
        "p95_latency_ms": pytest.approx(290.0),
        "feedback_count": 3,
        "mean_score": pytest.approx(0.5),
    }
    # A stream that failed after its 200 is an error, as in every report.
    assert (second["requests"], second["errors"], second["error_rate"]) == (2, 1, 0.5)
    assert second["cost_usd"] == "0.3"  # 0.1 + 0.2, exactly
    assert (second["prompt_tokens"], second["total_tokens"]) == (40, 45)
    assert second["mean_latency_ms"] == pytest.approx(100.0)
    assert second["p95_latency_ms"] == pytest.approx(145.0)
    assert (second["feedback_count"], second["mean_score"]) == (1, 0.75)
    assert (third["requests"], third["errors"], third["error_rate"]) == (1, 0, 0.0)
    assert (third["feedback_count"], third["mean_score"]) == (0, None)


async def test_one_template_a_wider_window_and_an_empty_one(store: Store) -> None:
    await known_traffic(store)
    only = await store.prompts(*DAY, "summary")
    assert [(r["prompt_id"], r["prompt_version"], r["requests"]) for r in only] == [
        ("summary", 1, 1)
    ]
    assert await store.prompts(*DAY, "no-such-template") == []
    # Three days: the older review@1 request and its feedback join the version's row.
    wide = await store.prompts(T0 - timedelta(days=3), DAY[1], "review")
    assert [(r["prompt_version"], r["requests"], r["feedback_count"]) for r in wide] == [
        (1, 4, 4),
        (2, 2, 1),
    ]
    assert wide[0]["mean_score"] == pytest.approx(0.625)
    assert await store.prompts(T0 + timedelta(days=1), T0 + timedelta(days=2)) == []


async def test_requests_without_a_template_are_left_out(store: Store) -> None:
    await store.write_usage([usage("a"), usage("b", status=500)])
    await store.write_feedback([fb("a", 1.0)])
    assert await store.prompts(*DAY) == []
