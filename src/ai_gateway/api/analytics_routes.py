"""The analytics routes (reports, feedback, the dashboard) for create_app to mount."""

from __future__ import annotations

from typing import Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ai_gateway.api.analytics import AnalyticsAPI, Flushable
from ai_gateway.api.common import BodyLimit
from ai_gateway.api.dashboard import DashboardAPI
from ai_gateway.api.feedback import FeedbackAPI, FeedbackSink
from ai_gateway.errors import NotFoundError
from ai_gateway.stores.analytics import AnalyticsStore

REPORTS = ("usage", "models", "errors", "requests", "feedback", "timeseries")


class AnalyticsSink(Flushable, FeedbackSink, Protocol):
    """What the routes need of the background writer (`usage.writer.AnalyticsWriter`)."""


async def _disabled(request: Request) -> Response:
    raise NotFoundError(
        "Analytics are disabled on this gateway (gateway.analytics_enabled is false), so "
        "there are no reports and no feedback to record.",
        code="analytics_disabled",
    )


def analytics_routes(
    store: AnalyticsStore | None,
    writer: AnalyticsSink | None,
    body: BodyLimit,
    *,
    flush_timeout_s: float = 5.0,
) -> list[Route]:
    """GET /ai/analytics/<report>, POST /ai/feedback, GET /dashboard (+ its two assets).

    With analytics disabled (`store` or `writer` None) the API answers 404 analytics_disabled;
    the dashboard is still served and shows that message.
    """
    dashboard = DashboardAPI()
    routes = [
        Route("/dashboard", dashboard.page, methods=["GET"]),
        Route("/dashboard/{name:str}", dashboard.asset, methods=["GET"]),
    ]
    if store is None or writer is None:
        routes += [Route(f"/ai/analytics/{name}", _disabled, methods=["GET"]) for name in REPORTS]
        routes.append(Route("/ai/feedback", _disabled, methods=["POST"]))
        return routes
    reports = AnalyticsAPI(store, writer, flush_timeout_s=flush_timeout_s)
    feedback = FeedbackAPI(store, writer, body)
    routes += [
        Route("/ai/analytics/usage", reports.usage, methods=["GET"]),
        Route("/ai/analytics/models", reports.models, methods=["GET"]),
        Route("/ai/analytics/errors", reports.errors, methods=["GET"]),
        Route("/ai/analytics/requests", reports.requests, methods=["GET"]),
        Route("/ai/analytics/feedback", reports.feedback, methods=["GET"]),
        Route("/ai/analytics/timeseries", reports.timeseries, methods=["GET"]),
        Route("/ai/feedback", feedback.create, methods=["POST"]),
    ]
    return routes
