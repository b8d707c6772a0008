"""The analytics and feedback API's pure parts: score normalisation, feedback validation, query
parameters (times, ranges, buckets, choices, limits) and report totals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from ai_gateway.api.analytics import cost_sum, feedback_totals, usage_totals
from ai_gateway.api.analytics_query import (
    check_known,
    parse_bucket,
    parse_choice,
    parse_limit,
    parse_range,
    parse_time,
)
from ai_gateway.errors import InvalidRequestError
from ai_gateway.schemas.analytics import FeedbackRequest, normalise_score
from ai_gateway.schemas.validation import parse_body

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


# --- scores ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "score", "raw"),
    [
        ("up", 1.0, "up"),
        ("down", 0.0, "down"),
        (" Up ", 1.0, "up"),
        (True, 1.0, "true"),
        (False, 0.0, "false"),
        (1, 0.0, "1"),
        (3, 0.5, "3"),
        (4, 0.75, "4"),
        (5, 1.0, "5"),
        (0.0, 0.0, "0.0"),
        (0.7, 0.7, "0.7"),
        (1.0, 1.0, "1.0"),
    ],
)
def test_scores_normalise_to_unit_interval_and_keep_the_raw_value(
    sent: object, score: float, raw: str
) -> None:
    assert normalise_score(sent) == (score, raw)


@pytest.mark.parametrize(
    ("sent", "hint"),
    [
        (0, "rating from 1 to 5"),
        (6, "rating from 1 to 5"),
        (-1, "rating from 1 to 5"),
        (1.5, "between 0.0 and 1.0"),
        (-0.1, "between 0.0 and 1.0"),
        (float("nan"), "between 0.0 and 1.0"),
        ("good", '"up" or "down"'),
        ("4", '"up" or "down"'),
        (None, "score must be"),
        ([1], "score must be"),
    ],
)
def test_bad_scores_say_what_is_accepted(sent: object, hint: str) -> None:
    with pytest.raises(ValueError, match=hint):
        normalise_score(sent)


def feedback_error(body: dict[str, Any]) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as info:
        parse_body(FeedbackRequest, body)
    return info.value


def test_feedback_request_accepts_comment_and_tags_deduplicated() -> None:
    parsed = parse_body(
        FeedbackRequest,
        {"request_id": "abc-1", "score": 4, "comment": "ok", "tags": [" a ", "b", "a"]},
    )
    assert (parsed.request_id, parsed.score, parsed.comment, parsed.tags) == (
        "abc-1",
        4,
        "ok",
        ["a", "b"],
    )


@pytest.mark.parametrize(
    ("body", "param", "text"),
    [
        ({"score": "up"}, "request_id", "Missing required parameter: 'request_id'"),
        ({"request_id": "r1"}, "score", "Missing required parameter: 'score'"),
        ({"request_id": "r1", "score": 9}, "score", "rating from 1 to 5"),
        ({"request_id": "r1", "score": None}, "score", "score must be"),
        ({"request_id": "has space", "score": 1}, "request_id", "x-request-id"),
        ({"request_id": "", "score": 1}, "request_id", "x-request-id"),
        ({"request_id": 12, "score": 1}, "request_id", "valid string"),
        ({"request_id": "r1", "score": 1, "comment": "x" * 4001}, "comment", "4000"),
        ({"request_id": "r1", "score": 1, "tags": ["t"] * 21}, "tags", "20"),
        ({"request_id": "r1", "score": 1, "tags": ["t" * 65]}, "tags[0]", "64"),
        ({"request_id": "r1", "score": 1, "tags": ["  "]}, "tags[0]", "at least 1"),
        ({"request_id": "r1", "score": 1, "tags": "a,b"}, "tags", "valid list"),
        ({"request_id": "r1", "score": 1, "rating": 5}, "rating", "Extra inputs"),
    ],
)
def test_feedback_validation_names_the_field(body: dict[str, Any], param: str, text: str) -> None:
    error = feedback_error(body)
    assert error.status == 400
    assert error.param == param
    assert text in error.message


def test_comment_of_exactly_4000_chars_and_20_tags_of_64_are_accepted() -> None:
    parsed = parse_body(
        FeedbackRequest,
        {
            "request_id": "r1",
            "score": True,
            "comment": "é" * 4000,
            "tags": [f"{i:02d}" + "t" * 62 for i in range(20)],
        },
    )
    assert len(parsed.comment or "") == 4000
    assert len(parsed.tags) == 20


# --- query parameters --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", NOW - timedelta(hours=24)),
        ("7d", NOW - timedelta(days=7)),
        ("30m", NOW - timedelta(minutes=30)),
        ("90s", NOW - timedelta(seconds=90)),
        ("2w", NOW - timedelta(weeks=2)),
        ("now", NOW),
        ("2025-05-31T10:00:00Z", datetime(2025, 5, 31, 10, tzinfo=UTC)),
        ("2025-05-31T12:00:00+02:00", datetime(2025, 5, 31, 10, tzinfo=UTC)),
        ("2025-05-31T10:00:00", datetime(2025, 5, 31, 10, tzinfo=UTC)),
        ("2025-05-31", datetime(2025, 5, 31, tzinfo=UTC)),
    ],
)
def test_times_are_iso_or_relative_to_now(text: str, expected: datetime) -> None:
    assert parse_time(text, NOW, "start") == expected


@pytest.mark.parametrize("text", ["yesterday", "24", "1700000000", "5y", "-3h", "2025-13-01", ""])
def test_bad_times_are_400s_naming_the_parameter(text: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_time(text, NOW, "end")
    assert info.value.param == "end"
    assert "'end'" in info.value.message


def test_range_defaults_to_the_last_24_hours_and_must_not_be_empty() -> None:
    window = parse_range({}, NOW)
    assert (window.start, window.end) == (NOW - timedelta(hours=24), NOW)
    window = parse_range({"end": "2025-01-02T00:00:00Z"}, NOW)
    assert window.start == datetime(2025, 1, 1, tzinfo=UTC)
    with pytest.raises(InvalidRequestError) as info:
        parse_range({"start": "1h", "end": "2h"}, NOW)
    assert info.value.param == "start"
    assert "start before it ends" in info.value.message


def test_absurd_durations_are_rejected_not_overflowed() -> None:
    with pytest.raises(InvalidRequestError, match="100 years"):
        parse_time("999999999w", NOW, "start")


def test_buckets_are_chosen_for_the_range_or_checked() -> None:
    day = parse_range({"start": "24h"}, NOW)
    assert parse_bucket({}, day) == 900  # 96 points
    assert parse_bucket({"bucket": "auto"}, parse_range({"start": "1h"}, NOW)) == 60
    assert parse_bucket({}, parse_range({"start": "30d"}, NOW)) == 6 * 3600
    assert parse_bucket({"bucket": "1h"}, day) == 3600
    assert parse_bucket({"bucket": "300"}, day) == 300
    for bad, hint in [("1s", "at most 1000"), ("0", "at least 1 second"), ("fast", "duration")]:
        with pytest.raises(InvalidRequestError, match=hint) as info:
            parse_bucket({"bucket": bad}, day)
        assert info.value.param == "bucket"


def test_choices_limits_and_unknown_parameters() -> None:
    assert parse_choice({}, "group_by", ("model", "day"), "model") == "model"
    assert parse_choice({"group_by": "day"}, "group_by", ("model", "day"), "model") == "day"
    with pytest.raises(InvalidRequestError, match="use one of model, day") as info:
        parse_choice({"group_by": "team"}, "group_by", ("model", "day"), "model")
    assert info.value.param == "group_by"
    assert parse_limit({}) == 50
    assert parse_limit({"limit": "7"}) == 7
    for bad in ("0", "1001", "-1", "ten"):
        with pytest.raises(InvalidRequestError, match="'limit'"):
            parse_limit({"limit": bad})
    check_known(["start"], ["start", "end"])
    with pytest.raises(InvalidRequestError, match="Unknown query parameter 'groupby'") as info:
        check_known(["groupby"], ["start", "end", "group_by"])
    assert info.value.param == "groupby"


# --- totals ------------------------------------------------------------------------------------


def test_cost_totals_are_exact_decimal_strings() -> None:
    assert cost_sum([]) == "0"
    assert cost_sum([None, "0.1", "0.2"]) == "0.3"  # a float sum would give 0.30000000000000004
    tiny = ["0.000000123456789012345678901234567"] * 3
    assert Decimal(cost_sum(tiny)) == Decimal("0.000000370370367037037036703703701")
    rows = [
        {"group": "a", "requests": 3, "errors": 1, "prompt_tokens": 10, "completion_tokens": 5,
         "cached_tokens": 2, "cache_write_tokens": 0, "reasoning_tokens": 1, "cost_usd": "1.5",
         "unpriced_requests": 0},
        {"group": "b", "requests": 2, "errors": 0, "prompt_tokens": 7, "completion_tokens": 3,
         "cached_tokens": 0, "cache_write_tokens": 4, "reasoning_tokens": 0, "cost_usd": None,
         "unpriced_requests": 2},
    ]  # fmt: skip
    assert usage_totals(rows) == {
        "requests": 5,
        "errors": 1,
        "prompt_tokens": 17,
        "completion_tokens": 8,
        "cached_tokens": 2,
        "cache_write_tokens": 4,
        "reasoning_tokens": 1,
        "unpriced_requests": 2,
        "cache_hits": 0,
        "cache_lookups": 0,
        "saved_tokens": 0,
        "total_tokens": 25,
        "cost_usd": "1.5",
        "cache_hit_rate": None,
        "saved_cost_usd": "0",
    }


def test_cache_totals_are_hits_over_all_lookups_and_exact_savings() -> None:
    rows = [
        {"group": "a", "requests": 4, "cache_hits": 1, "cache_lookups": 1, "saved_tokens": 30,
         "saved_cost_usd": "0.1"},
        {"group": "b", "requests": 5, "cache_hits": 1, "cache_lookups": 3, "saved_tokens": 12,
         "saved_cost_usd": "0.2"},
        {"group": "c", "requests": 2, "cache_hits": 0, "cache_lookups": 0, "saved_tokens": 0,
         "saved_cost_usd": None},
    ]  # fmt: skip
    totals = usage_totals(rows)
    # 2 hits of 4 lookups, not the mean of the groups' rates (1.0 and 0.33)
    assert (totals["cache_hits"], totals["cache_lookups"]) == (2, 4)
    assert totals["cache_hit_rate"] == 0.5
    assert totals["saved_tokens"] == 42
    assert totals["saved_cost_usd"] == "0.3"  # exact: a float sum gives 0.30000000000000004
    assert usage_totals(rows[2:])["cache_hit_rate"] is None  # no lookups: no rate, not 0


def test_feedback_totals_weight_each_group_by_its_count() -> None:
    rows = [
        {"group": "a", "count": 3, "mean_score": 1.0, "positive": 3, "negative": 0},
        {"group": "b", "count": 1, "mean_score": 0.0, "positive": 0, "negative": 1},
    ]
    assert feedback_totals(rows) == {"count": 4, "mean_score": 0.75, "positive": 3, "negative": 1}
    assert feedback_totals([])["mean_score"] is None
