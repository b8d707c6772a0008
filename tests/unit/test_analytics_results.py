"""The analytics queries' shapes without a database: the row a usage record is inserted as (both
dialects), the response cache's sums in the report queries, and what their rows become. (The
same queries on real databases: tests/integration/test_analytics_cache.py.)"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from ai_gateway.stores import analytics_queries as q
from ai_gateway.stores.analytics_results import request_row, timeseries_row, usage_row
from analytics_support import usage_record

CACHE_KEYS = ("cache_hits", "cache_lookups", "cache_hit_rate", "saved_tokens", "saved_cost_usd")


def _keep(value: Any) -> Any:
    return value


def inserted(d: q.Dialect, **fields: Any) -> dict[str, Any]:
    """A record as the row the store inserts, by column name."""
    cost = q.decimal_text if d is q.SQLITE else _keep
    values = q.usage_values(usage_record("r", **fields), q.utc, cost, d)
    return dict(zip(q.USAGE_COLUMNS, values, strict=True))


@pytest.mark.parametrize(
    ("d", "cost", "absent"),
    [(q.SQLITE, "0.00012", "\x00"), (q.POSTGRES, Decimal("0.000120"), None)],
)
def test_a_record_is_inserted_with_its_cache_status_and_savings(
    d: q.Dialect, cost: Any, absent: Any
) -> None:
    hit = inserted(
        d, cache_status="semantic-hit", saved_tokens=42, saved_cost_usd=Decimal("0.000120")
    )
    assert (hit["cache_status"], hit["saved_tokens"], hit["saved_cost_usd"]) == (
        "semantic-hit",
        42,
        cost,
    )
    plain = inserted(d)  # a record built without the cache fields saved nothing
    assert (plain["cache_status"], plain["saved_tokens"], plain["saved_cost_usd"]) == (
        "off",
        0,
        absent,
    )
    assert inserted(d, saved_cost_usd=Decimal("NaN"))["saved_cost_usd"] == absent
    sql = q.insert_usage_sql(d)
    assert "saved_tokens, saved_cost_usd, prompt_id, prompt_version)" in sql
    saved = q.USAGE_COLUMNS.index("saved_cost_usd") + 1
    assert sql.count(d.p(saved)) == 1
    if d is q.SQLITE:  # the saved cost may be absent: the marker becomes NULL
        assert f"NULLIF(?{saved}, char(0))" in sql


@pytest.mark.parametrize("d", [q.SQLITE, q.POSTGRES])
def test_usage_and_timeseries_sum_hits_lookups_and_savings_in_sql(d: q.Dialect) -> None:
    sums = (
        "sum(CASE WHEN cache_status IN ('hit', 'semantic-hit') THEN 1 ELSE 0 END), "
        "sum(CASE WHEN cache_status IN ('miss', 'hit', 'semantic-hit', 'refresh') THEN 1 "
        f"ELSE 0 END), sum(saved_tokens), {d.cost_sum('saved_cost_usd')} FROM usage_records"
    )
    assert sums in q.usage_sql(d, "model")
    assert sums in q.timeseries_sql(d)
    selected = "cache_status, saved_tokens, saved_cost_usd, prompt_id, prompt_version FROM"
    assert selected in q.requests_sql(d, "request_id")


USAGE = ("fast", 6, 0, 60, 30, 0, 0, 0, "0.6", 0)  # the columns before the cache's


def test_a_usage_row_has_hits_lookups_rate_and_savings() -> None:
    row = usage_row((*USAGE, 2, 4, 84, "0.00024"))
    assert {k: row[k] for k in CACHE_KEYS} == {
        "cache_hits": 2,
        "cache_lookups": 4,
        "cache_hit_rate": 0.5,
        "saved_tokens": 84,
        "saved_cost_usd": "0.00024",
    }
    assert (row["requests"], row["cost_usd"], row["unpriced_requests"]) == (6, "0.6", 0)
    # PostgreSQL sums bigints and numerics as Decimals
    pg = usage_row((*USAGE, 2, 4, Decimal(84), Decimal("0.000240")))
    assert (pg["saved_tokens"], pg["saved_cost_usd"]) == (84, "0.00024")
    assert isinstance(pg["saved_tokens"], int)
    off = usage_row((*USAGE, 0, 0, 0, None))
    assert (off["cache_hit_rate"], off["saved_cost_usd"]) == (None, None)


def test_a_timeseries_row_has_hits_lookups_rate_and_savings() -> None:
    row = timeseries_row((3600, "fast", 3, 0, 30, 15, "0.3", 10.0, 20.0, 1, 3, 40, None))
    assert row["bucket"] == "1970-01-01T01:00:00+00:00"
    assert row["p95_latency_ms"] == 20.0
    assert {k: row[k] for k in CACHE_KEYS} == {
        "cache_hits": 1,
        "cache_lookups": 3,
        "cache_hit_rate": pytest.approx(1 / 3),
        "saved_tokens": 40,
        "saved_cost_usd": None,  # the cached answer had no price
    }


def test_a_request_row_has_its_cache_status_and_savings() -> None:
    when = datetime(2025, 3, 1, 12, tzinfo=UTC)
    before = ("gw-1", None, when, "chat", "fast", "fast", "openai", "fast/0", False, 200)
    after = (None, None, 10, 5, None, False, 3.5, None, None, None)
    row = request_row((*before, *after, "hit", 15, "0.0000123", "review", 3), lambda t: t)
    assert (row["prompt_id"], row["prompt_version"]) == ("review", 3)
    assert (row["request_id"], row["latency_ms"], row["team"]) == ("gw-1", 3.5, None)
    assert (row["cache_status"], row["saved_tokens"], row["saved_cost_usd"]) == (
        "hit",
        15,
        "0.0000123",
    )
