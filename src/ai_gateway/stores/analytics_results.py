"""What the analytics queries' rows become: JSON-ready dicts, alike for both backends.

Values are `str`, `int`, `float`, `None`. Costs are decimal strings without exponent or trailing
zeros ("0.001234"), `None` when no request of the group had a price. Times are ISO-8601 strings in
UTC. Each function takes one row of the matching query in `analytics_queries` (its columns in the
order that query selects them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

from ai_gateway.stores.analytics_queries import DIGITS, EPOCH, decimal_text, utc

PER_1K_QUANTUM = Decimal("1e-10")

_USAGE_COUNTS = (
    *("requests", "errors", "prompt_tokens", "completion_tokens", "cached_tokens"),
    *("cache_write_tokens", "reasoning_tokens"),
)


def iso(moment: datetime) -> str:
    return utc(moment).isoformat()


def _cost(value: object) -> str | None:
    return None if value is None else decimal_text(Decimal(str(value)))


def _float(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float | Decimal):
        return float(value)
    raise TypeError(f"not a number: {type(value).__name__}")


def _cache(hits: Any, lookups: Any, saved_tokens: Any, saved_cost: Any) -> dict[str, Any]:
    """The four columns of `analytics_queries._cache_sums`, and the hit rate they give."""
    hits, lookups = int(hits), int(lookups)
    return {
        "cache_hits": hits,
        "cache_lookups": lookups,
        "cache_hit_rate": hits / lookups if lookups else None,
        "saved_tokens": int(saved_tokens),
        "saved_cost_usd": _cost(saved_cost),
    }


def usage_row(row: Sequence[Any]) -> dict[str, Any]:
    counts = {name: int(value) for name, value in zip(_USAGE_COUNTS, row[1:8], strict=True)}
    return {
        "group": row[0],
        **counts,
        "cost_usd": _cost(row[8]),
        "unpriced_requests": int(row[9]),
        **_cache(*row[10:14]),
    }


def models_row(row: Sequence[Any]) -> dict[str, Any]:
    requests, errors, cost = int(row[3]), int(row[4]), _cost(row[9])
    per_1k = None
    if cost is not None:
        wide = Context(prec=DIGITS)  # the one rounded figure
        quotient = wide.divide(wide.multiply(Decimal(cost), 1000), requests)
        per_1k = decimal_text(quotient.quantize(PER_1K_QUANTUM, ROUND_HALF_EVEN, wide))
    return {
        "model": row[0],
        "deployment": row[1],
        "provider": row[2],
        "requests": requests,
        "errors": errors,
        "error_rate": errors / requests,
        "p50_latency_ms": _float(row[5]),
        "p95_latency_ms": _float(row[6]),
        "p50_ttft_ms": _float(row[7]),
        "p95_ttft_ms": _float(row[8]),
        "cost_usd": cost,
        "cost_per_1k_requests": per_1k,
    }


def error_row(row: Sequence[Any], when: Callable[[Any], datetime]) -> dict[str, Any]:
    return {
        "request_id": row[0],
        "created_at": iso(when(row[1])),
        "model": row[2],
        "provider": row[3],
        "status": int(row[4]),
        "error_type": row[5],
        "error_code": row[6],
    }


def request_row(row: Sequence[Any], when: Callable[[Any], datetime]) -> dict[str, Any]:
    return {
        "request_id": row[0],
        "client_request_id": row[1],
        "created_at": iso(when(row[2])),
        "route": row[3],
        "model": row[4],
        "served_model": row[5],
        "provider": row[6],
        "deployment": row[7],
        "stream": bool(row[8]),
        "status": int(row[9]),
        "error_type": row[10],
        "error_code": row[11],
        "prompt_tokens": int(row[12]),
        "completion_tokens": int(row[13]),
        "cost_usd": _cost(row[14]),
        "usage_estimated": bool(row[15]),
        "latency_ms": _float(row[16]),
        "user": row[17],
        "key_id": row[18],
        "team": row[19],
        "cache_status": row[20],
        "saved_tokens": int(row[21]),
        "saved_cost_usd": _cost(row[22]),
        "prompt_id": row[23],
        "prompt_version": None if row[24] is None else int(row[24]),
    }


def error_count_row(row: Sequence[Any]) -> dict[str, Any]:
    return {"error_type": row[0], "count": int(row[1])}


def feedback_row(row: Sequence[Any]) -> dict[str, Any]:
    return {
        "group": row[0],
        "count": int(row[1]),
        "mean_score": _float(row[2]),
        "positive": int(row[3]),
        "negative": int(row[4]),
    }


def timeseries_row(row: Sequence[Any]) -> dict[str, Any]:
    return {
        "bucket": iso(EPOCH + timedelta(seconds=int(row[0]))),
        "model": row[1],
        "requests": int(row[2]),
        "errors": int(row[3]),
        "prompt_tokens": int(row[4]),
        "completion_tokens": int(row[5]),
        "cost_usd": _cost(row[6]),
        "p50_latency_ms": _float(row[7]),
        "p95_latency_ms": _float(row[8]),
        **_cache(*row[9:13]),
    }
