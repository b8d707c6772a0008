"""GET /ai/analytics/{usage,models,errors,requests,feedback,prompts,timeseries}: reports over
the analytics store.

Admin-only: they live under /ai/, which the master key guards.

Consistency: each query first flushes this instance's background writer (bounded by
`flush_timeout_s`), so requests that finished on this gateway before the query was made are in
the answer. Requests still in flight, and those served by other instances that share the store,
appear once they finish and their writer flushes (its batch interval). When the flush could not
finish (the store is slow or down), the report says so with `"complete": false`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from decimal import Context, Decimal, Inexact, InvalidOperation
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response

from ai_gateway.api.analytics_query import (
    TimeRange,
    check_known,
    parse_bucket,
    parse_choice,
    parse_limit,
    parse_range,
)
from ai_gateway.api.common import JSONResponse
from ai_gateway.errors import GatewayError, InvalidRequestError
from ai_gateway.observability.logging import get_logger
from ai_gateway.prompts.records import NAME_RULE, is_name
from ai_gateway.stores.analytics import (
    AnalyticsStore,
    FeedbackGroup,
    RequestKey,
    StoreUnavailableError,
    UsageGroup,
)

log = get_logger(__name__)

USAGE_GROUPS: tuple[UsageGroup, ...] = (
    *("model", "provider", "user", "key", "team", "day", "deployment"),
)
FEEDBACK_GROUPS: tuple[FeedbackGroup, ...] = ("model", "template", "day")
_SUMMED = (
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "unpriced_requests",
    "cache_hits",
    "cache_lookups",
    "saved_tokens",
)
_RANGE = ("start", "end")


class AnalyticsUnavailableError(GatewayError):
    """The analytics store could not answer: the gateway's side, and worth retrying."""

    status = 503
    type = "api_error"
    default_code = "analytics_unavailable"


class Flushable(Protocol):
    async def flush(self) -> None:
        """Write everything submitted so far (raises or hangs when the store is down)."""
        ...


def _params(request: Request, known: tuple[str, ...]) -> dict[str, str]:
    params = dict(request.query_params)
    check_known(params, known)
    return params


# Enough digits that adding costs never rounds (a sum that would need rounding raises).
_EXACT = Context(prec=200, traps=[Inexact, InvalidOperation])


def cost_sum(costs: list[object]) -> str:
    """The exact sum of decimal strings, as plain text without exponent ("0.00123", "0")."""
    total = Decimal(0)
    for cost in costs:
        if cost is not None:
            total = _EXACT.add(total, Decimal(str(cost)))
    if total == 0:
        return "0"
    text = format(total, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float) else 0


def usage_totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The sums over every group; costs are exact (decimal strings added as decimals)."""
    totals: dict[str, Any] = {name: sum(_int(r.get(name)) for r in rows) for name in _SUMMED}
    totals["total_tokens"] = totals["prompt_tokens"] + totals["completion_tokens"]
    lookups = totals["cache_lookups"]
    return {
        **totals,
        "cost_usd": cost_sum([r.get("cost_usd") for r in rows]),
        "cache_hit_rate": totals["cache_hits"] / lookups if lookups else None,
        "saved_cost_usd": cost_sum([r.get("saved_cost_usd") for r in rows]),
    }


def feedback_totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    count = sum(_int(r.get("count")) for r in rows)
    weighted = sum(
        float(r["mean_score"]) * _int(r.get("count"))
        for r in rows
        if isinstance(r.get("mean_score"), int | float)
    )
    return {
        "count": count,
        "mean_score": weighted / count if count else None,
        "positive": sum(_int(r.get("positive")) for r in rows),
        "negative": sum(_int(r.get("negative")) for r in rows),
    }


class AnalyticsAPI:
    def __init__(
        self,
        store: AnalyticsStore,
        writer: Flushable,
        *,
        flush_timeout_s: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._writer = writer
        self._flush_timeout_s = flush_timeout_s
        self._clock = clock

    async def _flush(self) -> bool:
        try:
            await asyncio.wait_for(self._writer.flush(), self._flush_timeout_s)
        except (TimeoutError, StoreUnavailableError) as exc:
            log.warning("analytics_flush_incomplete", error_type=type(exc).__name__)
            return False
        return True

    async def _query(self, work: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await work()
        except StoreUnavailableError:
            raise AnalyticsUnavailableError(
                "The analytics store is unavailable; try again shortly (the gateway keeps "
                "recording usage and writes it once the store is back)."
            ) from None

    async def _report(
        self, kind: str, window: TimeRange, work: Callable[[], Awaitable[Any]]
    ) -> dict[str, Any]:
        complete = await self._flush()
        data = await self._query(work)
        return {"object": f"analytics.{kind}", **window.to_json(), "complete": complete, **data}

    async def usage(self, request: Request) -> Response:
        params = _params(request, (*_RANGE, "group_by"))
        window = parse_range(params, self._clock())
        group_by = parse_choice(params, "group_by", USAGE_GROUPS, "model")

        async def work() -> Mapping[str, Any]:
            rows = await self._store.usage(window.start, window.end, group_by)
            return {"group_by": group_by, "data": rows, "totals": usage_totals(rows)}

        return JSONResponse(await self._report("usage", window, work))

    async def models(self, request: Request) -> Response:
        params = _params(request, _RANGE)
        window = parse_range(params, self._clock())

        async def work() -> Mapping[str, Any]:
            return {"data": await self._store.models(window.start, window.end)}

        return JSONResponse(await self._report("models", window, work))

    async def errors(self, request: Request) -> Response:
        params = _params(request, (*_RANGE, "limit"))
        window = parse_range(params, self._clock())
        limit = parse_limit(params)

        async def work() -> Mapping[str, Any]:
            recent = await self._store.errors(window.start, window.end, limit)
            counts = await self._store.error_counts(window.start, window.end)
            total = sum(_int(row.get("count")) for row in counts)
            return {"limit": limit, "data": recent, "by_type": counts, "total": total}

        return JSONResponse(await self._report("errors", window, work))

    async def requests(self, request: Request) -> Response:
        """The records of one request: by the gateway's id (`request_id`, at most one) or by
        the client's `x-request-id` (`client_request_id`: every request sent with it)."""
        params = _params(request, (*_RANGE, "request_id", "client_request_id", "limit"))
        window = parse_range(params, self._clock())
        limit = parse_limit(params)
        given = [name for name in ("request_id", "client_request_id") if name in params]
        if len(given) != 1:
            raise InvalidRequestError(
                "Give exactly one of 'request_id' (the x-gateway-request-id of a response) "
                "or 'client_request_id' (the x-request-id the client sent).",
                param="request_id",
            )
        key: RequestKey = "request_id" if given[0] == "request_id" else "client_request_id"
        value = params[key]

        async def work() -> Mapping[str, Any]:
            rows = await self._store.requests(window.start, window.end, key, value, limit)
            return {"limit": limit, key: value, "data": rows}

        return JSONResponse(await self._report("requests", window, work))

    async def feedback(self, request: Request) -> Response:
        params = _params(request, (*_RANGE, "group_by"))
        window = parse_range(params, self._clock())
        group_by = parse_choice(params, "group_by", FEEDBACK_GROUPS, "model")

        async def work() -> Mapping[str, Any]:
            rows = await self._store.feedback(window.start, window.end, group_by)
            return {"group_by": group_by, "data": rows, "totals": feedback_totals(rows)}

        return JSONResponse(await self._report("feedback", window, work))

    async def prompts(self, request: Request) -> Response:
        """Per prompt template version: requests, tokens, cost, latency, errors and feedback
        (of one template with `prompt_id`)."""
        params = _params(request, (*_RANGE, "prompt_id"))
        window = parse_range(params, self._clock())
        prompt_id = params.get("prompt_id")
        if prompt_id is not None and not is_name(prompt_id):
            raise InvalidRequestError(
                f"Invalid value for 'prompt_id': {prompt_id[:40]!r} is not a template id "
                f"({NAME_RULE}).",
                param="prompt_id",
            )

        async def work() -> Mapping[str, Any]:
            rows = await self._store.prompts(window.start, window.end, prompt_id)
            return {"prompt_id": prompt_id, "data": rows}

        return JSONResponse(await self._report("prompts", window, work))

    async def timeseries(self, request: Request) -> Response:
        params = _params(request, (*_RANGE, "bucket"))
        window = parse_range(params, self._clock())
        bucket_s = parse_bucket(params, window)

        async def work() -> Mapping[str, Any]:
            rows = await self._store.timeseries(window.start, window.end, bucket_s)
            return {"bucket_s": bucket_s, "data": rows}

        return JSONResponse(await self._report("timeseries", window, work))
