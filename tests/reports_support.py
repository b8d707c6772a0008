"""The analytics routes alone (reports, feedback, the dashboard) over a real analytics store and
the background writer, served by uvicorn on a real socket: what the report and dashboard tests
run against, fed known usage records."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ai_gateway.api.analytics_routes import AnalyticsEndpoints, analytics_endpoints
from ai_gateway.api.common import BodyLimit, error_response
from ai_gateway.api.dashboard import DashboardAPI
from ai_gateway.api.route_table import RouteTable
from ai_gateway.api.routes import analytics_entries
from ai_gateway.errors import GatewayError
from ai_gateway.schemas.analytics import (
    ErrorsReport,
    FeedbackReport,
    ModelsReport,
    PromptsReport,
    RequestsReport,
    TimeseriesReport,
    UsageReport,
)
from ai_gateway.stores.analytics_postgres import PostgresAnalyticsStore
from ai_gateway.stores.analytics_sqlite import SQLiteAnalyticsStore
from ai_gateway.usage.records import UsageRecord
from ai_gateway.usage.writer import AnalyticsWriter
from harness import LoopThread, bound_socket

# The documented response schemas (OpenAPI): every report must match its own.
SCHEMAS: dict[str, type[BaseModel]] = {
    "usage": UsageReport,
    "models": ModelsReport,
    "errors": ErrorsReport,
    "feedback": FeedbackReport,
    "timeseries": TimeseriesReport,
    "requests": RequestsReport,
    "prompts": PromptsReport,
}


def analytics_app_routes(endpoints: AnalyticsEndpoints) -> list[Route]:
    """The analytics group of the gateway's route table, alone."""
    return RouteTable(analytics_entries(endpoints, DashboardAPI())).routes


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return error_response(exc)


class ReportsServer:
    """The analytics routes over SQLiteAnalyticsStore + AnalyticsWriter, under uvicorn."""

    def __init__(self, store: SQLiteAnalyticsStore | PostgresAnalyticsStore) -> None:
        self.store = store
        # A long interval: records reach the store only when a report or feedback flushes.
        self.writer = AnalyticsWriter(self.store, flush_interval_s=3600)

        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            await self.store.start()
            await self.writer.start()
            yield
            await self.writer.aclose()
            await self.store.aclose()

        app = Starlette(
            routes=analytics_app_routes(
                analytics_endpoints(self.store, self.writer, BodyLimit(1 << 20, 30))
            ),
            lifespan=lifespan,
            exception_handlers={GatewayError: _gateway_error},
        )
        self._sock = bound_socket()
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._server = uvicorn.Server(
            uvicorn.Config(app, lifespan="on", log_config=None, access_log=False)
        )
        self._thread = LoopThread("reports")
        self._done = asyncio.run_coroutine_threadsafe(
            self._server.serve(sockets=[self._sock]), self._thread.loop
        )
        deadline = time.monotonic() + 10
        while not self._server.started:
            if self._done.done():
                self._done.result()
            assert time.monotonic() < deadline, "the reports server did not start"
            time.sleep(0.01)
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def submit(self, *records: UsageRecord) -> None:
        async def put() -> None:
            for record in records:
                self.writer.submit_usage(record)

        self._thread.run(put())

    def report(self, name: str, **params: str) -> dict[str, Any]:
        resp = self.http.get(f"/ai/analytics/{name}", params=params)
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        assert body["object"] == f"analytics.{name}"
        assert body["complete"] is True
        SCHEMAS[name].model_validate(body)
        return body

    def stop(self) -> None:
        self.http.close()
        self._server.should_exit = True
        self._done.result(15)
        self._thread.stop()
        self._sock.close()
