"""The handlers of the analytics routes (reports, feedback), real or disabled; their paths are
declared in `api/routes.py`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from starlette.requests import Request
from starlette.responses import Response

from ai_gateway.api.analytics import AnalyticsAPI, Flushable
from ai_gateway.api.common import BodyLimit
from ai_gateway.api.feedback import FeedbackAPI, FeedbackSink
from ai_gateway.api.route_table import Endpoint
from ai_gateway.errors import NotFoundError
from ai_gateway.stores.analytics import AnalyticsStore


class AnalyticsSink(Flushable, FeedbackSink, Protocol):
    """What the routes need of the background writer (`usage.writer.AnalyticsWriter`)."""


async def _disabled(request: Request) -> Response:
    raise NotFoundError(
        "Analytics are disabled on this gateway (gateway.analytics_enabled is false), so "
        "there are no reports and no feedback to record.",
        code="analytics_disabled",
    )


@dataclass(frozen=True)
class AnalyticsEndpoints:
    """GET /ai/analytics/<report> and POST /ai/feedback."""

    usage: Endpoint
    models: Endpoint
    errors: Endpoint
    requests: Endpoint
    feedback: Endpoint
    prompts: Endpoint
    timeseries: Endpoint
    create_feedback: Endpoint


def analytics_endpoints(
    store: AnalyticsStore | None,
    writer: AnalyticsSink | None,
    body: BodyLimit,
    *,
    flush_timeout_s: float = 5.0,
) -> AnalyticsEndpoints:
    """With analytics disabled (`store` or `writer` None) every one answers 404
    analytics_disabled (the dashboard is still served and shows that message)."""
    if store is None or writer is None:
        return AnalyticsEndpoints(*(_disabled,) * 8)
    reports = AnalyticsAPI(store, writer, flush_timeout_s=flush_timeout_s)
    feedback = FeedbackAPI(store, writer, body)
    return AnalyticsEndpoints(
        usage=reports.usage,
        models=reports.models,
        errors=reports.errors,
        requests=reports.requests,
        feedback=reports.feedback,
        prompts=reports.prompts,
        timeseries=reports.timeseries,
        create_feedback=feedback.create,
    )
