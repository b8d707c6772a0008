"""What the two analytics backends share: the SQL they run (one text per dialect), the rows they
insert, exact decimal arithmetic and percentiles. (What a query's rows become: `analytics_results`.)

Both backends run the same queries, so they answer alike; only a few expressions differ:

- time: PostgreSQL stores `timestamptz`; SQLite stores integer microseconds since the epoch (UTC),
  so ranges and buckets are exact integer arithmetic.
- cost: PostgreSQL stores `NUMERIC` (unconstrained: exact, any scale) and sums it natively;
  SQLite stores the decimal as TEXT and sums it with `gw_dsum`, a Python aggregate over `Decimal`
  with enough precision that no sum is ever rounded (an inexact sum raises instead).
- percentiles: PostgreSQL's `percentile_cont`; SQLite's `gw_percentile`, a Python aggregate with
  the same definition (linear interpolation between the two nearest ranks, NULLs ignored).
- ordering: groups sort by byte order in both (`COLLATE "C"` on PostgreSQL), NULL first.
- absent values in inserted rows: None for PostgreSQL; for SQLite a NUL character that the INSERT
  turns into NULL (see `Dialect.absent`).

A request is an error when its status is >= 400 or it has an error type.
Feedback is positive when its normalised score is above 0.5, negative below 0.5 (0.5 is neutral).
"""

# ruff: noqa: S608 -- SQL here is assembled from constants only; every value is a bind parameter.

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal, Inexact, InvalidOperation
from typing import Any, Literal

from ai_gateway.stores.analytics import FeedbackGroup, RequestKey, UsageGroup
from ai_gateway.usage.records import CACHE_HITS, CACHE_LOOKUPS, FeedbackRecord, UsageRecord

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TEXT = 1024  # longer strings (a client-chosen model name) are cut, never rejected
MAX_COMMENT = 16_384
DIGITS = 200  # significant digits for cost arithmetic: far beyond any real sum

USAGE_COLUMNS = (
    *("request_id", "created_at", "route", "model", "served_model", "provider", "deployment"),
    *("upstream_model", "stream", "status", "error_type", "error_code", "prompt_tokens"),
    *("completion_tokens", "cached_tokens", "cache_write_tokens", "reasoning_tokens"),
    *("cost_usd", "latency_ms", "ttft_ms", "attempts", "fallbacks", "cache_status"),
    *("user_id", "key_id", "team", "template", "client_request_id", "usage_estimated"),
    *("saved_tokens", "saved_cost_usd", "prompt_id", "prompt_version"),
)
# Usage columns that may be NULL (an absent value); see `Dialect.absent`.
USAGE_NULLABLE = frozenset(
    (
        *("error_type", "error_code", "cost_usd", "ttft_ms", "user_id", "key_id", "team"),
        *("template", "client_request_id", "saved_cost_usd", "prompt_id", "prompt_version"),
    )
)
FEEDBACK_COLUMNS = ("request_id", "created_at", "score", "raw_score", "comment", "tags")
IS_ERROR = "(status >= 400 OR error_type IS NOT NULL)"
# Cache statuses are a closed set of constants (usage.records), safe to write into SQL.
IS_CACHE_HIT = "cache_status IN (" + ", ".join(f"'{x}'" for x in CACHE_HITS) + ")"
IS_CACHE_LOOKUP = "cache_status IN (" + ", ".join(f"'{x}'" for x in CACHE_LOOKUPS) + ")"


@dataclass(frozen=True, slots=True)
class Dialect:
    name: Literal["sqlite", "postgres"]

    def p(self, n: int) -> str:
        """The n-th (1-based) bind parameter."""
        return f"${n}" if self.name == "postgres" else f"?{n}"

    @property
    def absent(self) -> str | None:
        """What a row to insert holds for an absent (NULL) usage value. SQLite: a lone NUL
        character, which `nullable` turns into NULL (Python's sqlite3 binds None through its
        adapter machinery, three times slower per row than a string; and no stored text can be
        a NUL, `clean_text` replaces them). PostgreSQL: None."""
        return "\x00" if self.name == "sqlite" else None

    def nullable(self, n: int) -> str:
        """The n-th bind parameter of a column that may be absent (see `absent`)."""
        return f"NULLIF(?{n}, char(0))" if self.name == "sqlite" else self.p(n)

    def cost_sum(self, column: str) -> str:
        return f"sum({column})" if self.name == "postgres" else f"gw_dsum({column})"

    def percentile(self, column: str, q: float) -> str:
        if self.name == "postgres":
            return f"percentile_cont({q}) WITHIN GROUP (ORDER BY {column})"
        return f"gw_percentile({column}, {q})"

    def day(self, column: str) -> str:
        if self.name == "postgres":
            return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
        return f"strftime('%Y-%m-%d', {column} / 1000000, 'unixepoch')"

    def bucket(self, column: str, param: str) -> str:
        """The bucket's start in whole seconds since the epoch."""
        if self.name == "postgres":
            return (
                f"(floor(extract(epoch FROM {column}) / {param}::bigint) * {param}::bigint)::bigint"
            )
        return f"(({column} / ({param} * 1000000)) * {param})"

    def order(self, expression: str) -> str:
        collate = ' COLLATE "C"' if self.name == "postgres" else ""
        return f"{expression}{collate} NULLS FIRST"


SQLITE = Dialect("sqlite")
POSTGRES = Dialect("postgres")


# --- SQL -------------------------------------------------------------------------------------


def _insert(
    d: Dialect,
    table: str,
    columns: tuple[str, ...],
    key: str,
    nullable: frozenset[str] = frozenset(),
    rows: int = 1,
) -> str:
    # ON CONFLICT on the key only (not SQLite's INSERT OR IGNORE, which would also swallow a
    # NOT NULL violation and lose the row silently): a retried batch is a no-op.
    width = len(columns)
    values = ", ".join(
        "("
        + ", ".join(
            d.nullable(n) if column in nullable else d.p(n)
            for n, column in enumerate(columns, row * width + 1)
        )
        + ")"
        for row in range(rows)
    )
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values} ON CONFLICT ({key}) DO NOTHING"
    )


@functools.cache
def insert_usage_sql(d: Dialect, rows: int = 1) -> str:
    """Insert `rows` usage rows in one statement (their values one after the other)."""
    return _insert(d, "usage_records", USAGE_COLUMNS, "request_id", USAGE_NULLABLE, rows)


def insert_feedback_sql(d: Dialect) -> str:
    return _insert(d, "feedback_records", FEEDBACK_COLUMNS, "request_id, created_at")


def has_request_sql(d: Dialect, by_user: bool = False) -> str:
    user = f" AND user_id = {d.p(2)}" if by_user else ""
    return f"SELECT 1 FROM usage_records WHERE request_id = {d.p(1)}{user} LIMIT 1"


def purge_sql(d: Dialect, table: Literal["usage_records", "feedback_records"]) -> str:
    return f"DELETE FROM {table} WHERE created_at < {d.p(1)}"


def _window(d: Dialect, column: str = "created_at") -> str:
    return f"{column} >= {d.p(1)} AND {column} < {d.p(2)}"


def _group(group_by: str, **expressions: str) -> str:
    if group_by not in expressions:  # never paste an unknown name into SQL
        raise ValueError(f"cannot group by {group_by!r}; use one of {', '.join(expressions)}")
    return expressions[group_by]


def _cache_sums(d: Dialect) -> str:
    """Hits, the requests a hit rate is out of, saved tokens and saved cost (the last four
    columns of the usage and timeseries queries)."""
    return (
        f"sum(CASE WHEN {IS_CACHE_HIT} THEN 1 ELSE 0 END), "
        f"sum(CASE WHEN {IS_CACHE_LOOKUP} THEN 1 ELSE 0 END), "
        f"sum(saved_tokens), {d.cost_sum('saved_cost_usd')}"
    )


def usage_sql(d: Dialect, group_by: UsageGroup) -> str:
    group = _group(
        group_by,
        model="model",
        provider="provider",
        user="user_id",
        key="key_id",
        team="team",
        deployment="deployment",
        day=d.day("created_at"),
    )
    return (
        f"SELECT {group}, count(*), sum(CASE WHEN {IS_ERROR} THEN 1 ELSE 0 END), "
        "sum(prompt_tokens), sum(completion_tokens), sum(cached_tokens), "
        f"sum(cache_write_tokens), sum(reasoning_tokens), {d.cost_sum('cost_usd')}, "
        f"sum(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END), {_cache_sums(d)} "
        f"FROM usage_records WHERE {_window(d)} GROUP BY {group} ORDER BY {d.order(group)}"
    )


def models_sql(d: Dialect) -> str:
    return (
        "SELECT served_model, deployment, provider, count(*), "
        f"sum(CASE WHEN {IS_ERROR} THEN 1 ELSE 0 END), "
        f"{d.percentile('latency_ms', 0.5)}, {d.percentile('latency_ms', 0.95)}, "
        f"{d.percentile('ttft_ms', 0.5)}, {d.percentile('ttft_ms', 0.95)}, "
        f"{d.cost_sum('cost_usd')} "
        f"FROM usage_records WHERE {_window(d)} GROUP BY served_model, deployment, provider "
        f"ORDER BY {d.order('served_model')}, {d.order('deployment')}, {d.order('provider')}"
    )


def errors_sql(d: Dialect) -> str:
    return (
        "SELECT request_id, created_at, model, provider, status, error_type, error_code "
        f"FROM usage_records WHERE {_window(d)} AND {IS_ERROR} "
        f"ORDER BY created_at DESC, request_id DESC LIMIT {d.p(3)}"
    )


_REQUEST_COLUMNS = (
    "request_id, client_request_id, created_at, route, model, served_model, provider, "
    "deployment, stream, status, error_type, error_code, prompt_tokens, completion_tokens, "
    "cost_usd, usage_estimated, latency_ms, user_id, key_id, team, cache_status, saved_tokens, "
    "saved_cost_usd, prompt_id, prompt_version"
)


def requests_sql(d: Dialect, key: RequestKey) -> str:
    """The records of one request id (the gateway's: at most one) or of one client id (as
    many as the client sent with it), newest first."""
    column = _group(key, request_id="request_id", client_request_id="client_request_id")
    return (
        f"SELECT {_REQUEST_COLUMNS} FROM usage_records WHERE {_window(d)} "
        f"AND {column} = {d.p(3)} ORDER BY created_at DESC, request_id DESC LIMIT {d.p(4)}"
    )


def error_counts_sql(d: Dialect) -> str:
    return (
        f"SELECT error_type, count(*) FROM usage_records WHERE {_window(d)} AND {IS_ERROR} "
        f"GROUP BY error_type ORDER BY count(*) DESC, {d.order('error_type')}"
    )


def feedback_sql(d: Dialect, group_by: FeedbackGroup) -> str:
    group = _group(group_by, model="u.model", template="u.template", day=d.day("f.created_at"))
    return (
        f"SELECT {group}, count(*), avg(f.score), "
        "sum(CASE WHEN f.score > 0.5 THEN 1 ELSE 0 END), "
        "sum(CASE WHEN f.score < 0.5 THEN 1 ELSE 0 END) "
        "FROM feedback_records f LEFT JOIN usage_records u ON u.request_id = f.request_id "
        f"WHERE {_window(d, 'f.created_at')} GROUP BY {group} ORDER BY {d.order(group)}"
    )


def timeseries_sql(d: Dialect) -> str:
    bucket = d.bucket("created_at", d.p(3))
    return (
        f"SELECT {bucket}, model, count(*), sum(CASE WHEN {IS_ERROR} THEN 1 ELSE 0 END), "
        f"sum(prompt_tokens), sum(completion_tokens), {d.cost_sum('cost_usd')}, "
        f"{d.percentile('latency_ms', 0.5)}, {d.percentile('latency_ms', 0.95)}, {_cache_sums(d)} "
        f"FROM usage_records WHERE {_window(d)} GROUP BY {bucket}, model "
        f"ORDER BY {bucket}, {d.order('model')}"
    )


# --- values in ---------------------------------------------------------------------------------


def utc(moment: datetime) -> datetime:
    """An aware UTC datetime (a naive one is taken to be UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def to_micros(moment: datetime) -> int:
    delta = (moment if moment.tzinfo is UTC else utc(moment)) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def clean_text(value: str | None, limit: int = MAX_TEXT) -> str | None:
    """Cut over-long text; replace NUL (PostgreSQL's text type rejects it, and it is SQLite's
    marker of an absent value) with U+FFFD."""
    if value is None:
        return None
    value = value[:limit]
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def clean_cost(cost: Decimal | None) -> Decimal | None:
    return cost if cost is not None and cost.is_finite() else None


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def usage_values(
    r: UsageRecord,
    when: Callable[[datetime], Any],
    cost: Callable[[Decimal], Any],
    d: Dialect,
) -> tuple[Any, ...]:
    """A record as a row in USAGE_COLUMNS order, for `insert_usage_sql(d)`; `when` and `cost`
    convert for the dialect, absent values are `d.absent`."""
    t = clean_text
    none = d.absent
    price = clean_cost(r.cost_usd)
    saved = clean_cost(r.saved_cost_usd)
    ttft = _finite(r.ttft_ms)
    return (
        t(r.request_id),
        when(r.created_at),
        r.route,
        t(r.model),
        t(r.served_model),
        t(r.provider),
        t(r.deployment),
        t(r.upstream_model),
        r.stream if none is None else int(r.stream),  # SQLite: an int binds faster than a bool
        r.status,
        none if r.error_type is None else t(r.error_type),
        none if r.error_code is None else t(r.error_code),
        r.prompt_tokens,
        r.completion_tokens,
        r.cached_tokens,
        r.cache_write_tokens,
        r.reasoning_tokens,
        none if price is None else cost(price),
        _finite(r.latency_ms) or 0.0,
        none if ttft is None else ttft,
        r.attempts,
        r.fallbacks,
        r.cache_status,
        none if r.user is None else t(r.user),
        none if r.key_id is None else t(r.key_id),
        none if r.team is None else t(r.team),
        none if r.template is None else t(r.template),
        none if r.client_request_id is None else t(r.client_request_id),
        r.usage_estimated if none is None else int(r.usage_estimated),
        r.saved_tokens,
        none if saved is None else cost(saved),
        none if r.prompt_id is None else t(r.prompt_id),
        none if r.prompt_version is None else r.prompt_version,
    )


def feedback_values(r: FeedbackRecord, when: Callable[[datetime], Any]) -> tuple[Any, ...]:
    t = clean_text
    tags = json.dumps([t(tag) for tag in r.tags], ensure_ascii=False)
    comment = t(r.comment, MAX_COMMENT)
    return (t(r.request_id), when(r.created_at), float(r.score), t(r.raw_score), comment, tags)


# --- exact decimals and percentiles ------------------------------------------------------------


def decimal_text(value: Decimal) -> str:
    """A decimal as plain text: no exponent, no trailing zeros ("0.001234", "12", "0")."""
    if value == 0:
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


class DecimalSum:
    """SQLite aggregate `gw_dsum(text)`: the exact sum of decimal strings, NULL when none."""

    def __init__(self) -> None:
        self.total: Decimal | None = None
        # A context of its own (contexts record flags): a sum needing rounding raises instead.
        self.context = Context(prec=DIGITS, traps=[Inexact, InvalidOperation])

    def step(self, value: object) -> None:
        if value is None:
            return
        self.total = self.context.add(self.total or Decimal(0), Decimal(str(value)))

    def finalize(self) -> str | None:
        return None if self.total is None else decimal_text(self.total)


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """The q-quantile of sorted values by linear interpolation between the nearest ranks (as
    PostgreSQL's percentile_cont and numpy's default); None for no values."""
    if not ordered:
        return None
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    fraction = position - low
    return ordered[low] + (ordered[high] - ordered[low]) * fraction


class Percentile:
    """SQLite aggregate `gw_percentile(value, q)`."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.q = 0.5

    def step(self, value: object, q: float) -> None:
        self.q = q
        if isinstance(value, int | float):
            self.values.append(float(value))

    def finalize(self) -> float | None:
        self.values.sort()
        return percentile(self.values, self.q)
