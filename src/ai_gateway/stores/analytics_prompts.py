"""The prompt template report: per template version (`prompt_id`, `prompt_version` of the usage
records), what its requests cost and how they went, so versions can be compared. Its SQL (one
text per dialect, built with `analytics_queries.Dialect` like the other reports) and what a row
becomes (JSON-ready, like `analytics_results`).

- Requests in the window that were rendered from a template; requests without one are left out.
- Errors as in every report: status >= 400 or an error type (a stream that failed after its
  200 has one).
- Latency: mean, p50 and p95 (the same percentile on both backends, see `analytics_queries`).
- Feedback: the feedback rows on those requests (joined by request id), whenever they were given
  (a request's feedback comes after it, so only feedback from the window's start on is read):
  their count and mean normalised score. A request rated twice counts twice, as in the feedback
  report; it is still one request.
"""

# ruff: noqa: S608 -- SQL here is assembled from constants only; every value is a bind parameter.

from __future__ import annotations

import functools
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from ai_gateway.stores.analytics_queries import IS_ERROR, Dialect, decimal_text


@functools.cache
def prompts_sql(d: Dialect, by_id: bool = False) -> str:
    """Bind parameters: the window's start and end, and with `by_id` one template id."""
    one = f" AND u.prompt_id = {d.p(3)}" if by_id else ""
    # Feedback is summed per request first, so a request's rows are never counted twice.
    feedback = (
        "SELECT request_id, count(*) AS n, sum(score) AS total FROM feedback_records "
        f"WHERE created_at >= {d.p(1)} GROUP BY request_id"
    )
    return (
        "SELECT u.prompt_id, u.prompt_version, count(*), "
        f"sum(CASE WHEN {IS_ERROR} THEN 1 ELSE 0 END), "
        f"sum(u.prompt_tokens), sum(u.completion_tokens), {d.cost_sum('u.cost_usd')}, "
        "sum(CASE WHEN u.cost_usd IS NULL THEN 1 ELSE 0 END), avg(u.latency_ms), "
        f"{d.percentile('u.latency_ms', 0.5)}, {d.percentile('u.latency_ms', 0.95)}, "
        "coalesce(sum(f.n), 0), sum(f.total) "
        f"FROM usage_records u LEFT JOIN ({feedback}) f ON f.request_id = u.request_id "
        f"WHERE u.created_at >= {d.p(1)} AND u.created_at < {d.p(2)} "
        f"AND u.prompt_id IS NOT NULL{one} "
        "GROUP BY u.prompt_id, u.prompt_version "
        f"ORDER BY {d.order('u.prompt_id')}, u.prompt_version"
    )


def _float(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float | Decimal):
        return float(value)
    raise TypeError(f"not a number: {type(value).__name__}")


def prompts_row(row: Sequence[Any]) -> dict[str, Any]:
    """One row of `prompts_sql`."""
    requests, errors = int(row[2]), int(row[3])
    prompt_tokens, completion_tokens = int(row[4]), int(row[5])
    ratings, score_sum = int(row[11]), _float(row[12])
    return {
        "prompt_id": row[0],
        "prompt_version": None if row[1] is None else int(row[1]),
        "requests": requests,
        "errors": errors,
        "error_rate": errors / requests,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "cost_usd": None if row[6] is None else decimal_text(Decimal(str(row[6]))),
        "unpriced_requests": int(row[7]),
        "mean_latency_ms": _float(row[8]),
        "p50_latency_ms": _float(row[9]),
        "p95_latency_ms": _float(row[10]),
        "feedback_count": ratings,
        "mean_score": score_sum / ratings if ratings and score_sum is not None else None,
    }
