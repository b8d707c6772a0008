"""The analytics, feedback and dashboard endpoints over an in-memory store and writer: what they
call, in which order, and the errors a client sees (the real stores: integration tests)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from ai_gateway.api.analytics_routes import AnalyticsEndpoints, analytics_endpoints
from ai_gateway.api.common import BodyLimit, error_response
from ai_gateway.api.dashboard import DashboardAPI
from ai_gateway.api.route_table import RouteTable
from ai_gateway.api.routes import analytics_entries
from ai_gateway.errors import GatewayError
from ai_gateway.stores.analytics import StoreUnavailableError
from ai_gateway.usage.records import FeedbackRecord, UsageRecord

# --- reports and feedback ----------------------------------------------------------------------


def analytics_app_routes(endpoints: AnalyticsEndpoints) -> list[Route]:
    """The analytics group of the gateway's route table, alone."""
    return RouteTable(analytics_entries(endpoints, DashboardAPI())).routes


class FakeStore:
    def __init__(self, calls: list[tuple[Any, ...]]) -> None:
        self.known: set[str] = {"req-stored"}
        self.calls = calls  # shared with the writer: the order of flushes and queries
        self.down = False

    async def has_request(self, request_id: str, *, user: str | None = None) -> bool:
        if self.down:
            raise StoreUnavailableError("down")
        return request_id in self.known and user is None

    async def usage(self, start: datetime, end: datetime, group_by: str) -> list[dict[str, Any]]:
        if self.down:
            raise StoreUnavailableError("down")
        self.calls.append(("usage", start, end, group_by))
        return [{"group": "m", "requests": 2, "errors": 1, "cost_usd": "0.25"}]

    async def timeseries(self, start: datetime, end: datetime, bucket_s: int) -> list[Any]:
        self.calls.append(("timeseries", start, end, bucket_s))
        return []

    async def errors(self, start: datetime, end: datetime, limit: int) -> list[dict[str, Any]]:
        self.calls.append(("errors", start, end, limit))
        return [{"request_id": "x"}]

    async def requests(
        self, start: datetime, end: datetime, key: str, value: str, limit: int
    ) -> list[dict[str, Any]]:
        self.calls.append(("requests", key, value, limit))
        return [{"request_id": "gw-1", "client_request_id": value}]

    async def prompts(
        self, start: datetime, end: datetime, prompt_id: str | None = None
    ) -> list[dict[str, Any]]:
        self.calls.append(("prompts", start, end, prompt_id))
        return [{"prompt_id": "review", "prompt_version": 2, "requests": 1}]

    async def error_counts(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        return [{"error_type": "t", "count": 4}, {"error_type": None, "count": 1}]


class FakeWriter:
    def __init__(self, calls: list[tuple[Any, ...]]) -> None:
        self.feedback: list[FeedbackRecord] = []
        self.pending_ids: set[str] = set()
        self.calls = calls
        self.hang = False

    def submit_usage(self, record: UsageRecord) -> None:
        self.pending_ids.add(record.request_id)

    def submit_feedback(self, record: FeedbackRecord) -> None:
        self.feedback.append(record)

    def pending(self, request_id: str, *, user: str | None = None) -> bool:
        return request_id in self.pending_ids and user is None

    async def flush(self) -> None:
        if self.hang:
            await asyncio.sleep(3600)
        self.calls.append(("flush",))


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return error_response(exc)


@pytest.fixture
def parts() -> tuple[FakeStore, FakeWriter]:
    calls: list[tuple[Any, ...]] = []
    return FakeStore(calls), FakeWriter(calls)


@pytest.fixture
def http(parts: tuple[FakeStore, FakeWriter]) -> Iterator[TestClient]:
    store, writer = parts
    app = Starlette(
        routes=analytics_app_routes(
            analytics_endpoints(store, writer, BodyLimit(10_000, 30), flush_timeout_s=0.2)
        ),
        exception_handlers={GatewayError: _gateway_error},
    )
    with TestClient(app) as client:
        yield client


def test_reports_flush_the_writer_first_and_pass_the_range(
    http: TestClient, parts: tuple[FakeStore, FakeWriter]
) -> None:
    store, _ = parts
    resp = http.get(
        "/ai/analytics/usage",
        params={"start": "2025-01-01T00:00:00Z", "end": "2025-01-02", "group_by": "provider"},
    )
    assert resp.status_code == 200
    body = resp.json()
    assert store.calls == [
        ("flush",),
        ("usage", datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC), "provider"),
    ]
    assert body["object"] == "analytics.usage"
    assert (body["start"], body["end"]) == (
        "2025-01-01T00:00:00+00:00",
        "2025-01-02T00:00:00+00:00",
    )
    assert body["complete"] is True
    assert body["totals"]["requests"] == 2
    assert body["totals"]["cost_usd"] == "0.25"


def test_timeseries_reports_the_bucket_it_used(
    http: TestClient, parts: tuple[FakeStore, FakeWriter]
) -> None:
    body = http.get("/ai/analytics/timeseries", params={"start": "6h"}).json()
    assert body["bucket_s"] == 300
    assert parts[0].calls[1][0] == "timeseries"
    assert parts[0].calls[1][3] == 300


def test_errors_report_lists_recent_errors_and_counts_all(http: TestClient) -> None:
    body = http.get("/ai/analytics/errors", params={"limit": "5"}).json()
    assert body["limit"] == 5
    assert body["data"] == [{"request_id": "x"}]
    assert body["by_type"] == [{"error_type": "t", "count": 4}, {"error_type": None, "count": 1}]
    assert body["total"] == 5


def test_requests_report_finds_by_one_id_of_either_kind(
    http: TestClient, parts: tuple[FakeStore, FakeWriter]
) -> None:
    body = http.get("/ai/analytics/requests", params={"client_request_id": "mine"}).json()
    assert body["object"] == "analytics.requests"
    assert body["client_request_id"] == "mine"
    assert body["data"] == [{"request_id": "gw-1", "client_request_id": "mine"}]
    assert parts[0].calls[-1] == ("requests", "client_request_id", "mine", 50)
    http.get("/ai/analytics/requests", params={"request_id": "gw-1", "limit": "3"})
    assert parts[0].calls[-1] == ("requests", "request_id", "gw-1", 3)
    for params in ({}, {"request_id": "a", "client_request_id": "b"}):
        resp = http.get("/ai/analytics/requests", params=params)
        assert resp.status_code == 400
        assert resp.json()["error"]["param"] == "request_id"


def test_prompts_report_passes_the_range_and_the_template_asked_for(
    http: TestClient, parts: tuple[FakeStore, FakeWriter]
) -> None:
    params = {"start": "2025-01-01", "end": "2025-01-02", "prompt_id": "review"}
    body = http.get("/ai/analytics/prompts", params=params).json()
    assert parts[0].calls == [
        ("flush",),
        ("prompts", datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC), "review"),
    ]
    assert body["object"] == "analytics.prompts"
    assert body["prompt_id"] == "review"
    assert body["data"] == [{"prompt_id": "review", "prompt_version": 2, "requests": 1}]
    assert http.get("/ai/analytics/prompts").json()["prompt_id"] is None
    assert parts[0].calls[-1][3] is None


@pytest.mark.parametrize(
    ("path", "params", "param"),
    [
        ("/ai/analytics/usage", {"group_by": "colour"}, "group_by"),
        ("/ai/analytics/usage", {"start": "last tuesday"}, "start"),
        ("/ai/analytics/models", {"end": "soon"}, "end"),
        ("/ai/analytics/errors", {"limit": "all"}, "limit"),
        ("/ai/analytics/feedback", {"group_by": "user"}, "group_by"),
        ("/ai/analytics/prompts", {"prompt_id": "no spaces/here"}, "prompt_id"),
        ("/ai/analytics/prompts", {"group_by": "model"}, "group_by"),
        ("/ai/analytics/timeseries", {"bucket": "1s", "start": "30d"}, "bucket"),
        ("/ai/analytics/models", {"since": "1h"}, "since"),
    ],
)
def test_bad_parameters_are_openai_style_400s(
    http: TestClient, path: str, params: dict[str, str], param: str
) -> None:
    resp = http.get(path, params=params)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert param in error["message"]


def test_store_down_is_a_503_and_a_stuck_flush_marks_the_report_incomplete(
    http: TestClient, parts: tuple[FakeStore, FakeWriter]
) -> None:
    store, writer = parts
    writer.hang = True
    body = http.get("/ai/analytics/timeseries").json()
    assert body["complete"] is False
    store.down = True
    resp = http.get("/ai/analytics/usage")
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "analytics_unavailable"


def test_feedback_is_recorded_for_stored_and_pending_requests(
    http: TestClient, parts: tuple[FakeStore, FakeWriter]
) -> None:
    _, writer = parts
    resp = http.post(
        "/ai/feedback", json={"request_id": "req-stored", "score": "up", "tags": ["x"]}
    )
    assert resp.status_code == 201
    body = resp.json()
    assert body["object"] == "feedback"
    assert (body["request_id"], body["score"], body["raw_score"]) == ("req-stored", 1.0, "up")
    assert (body["comment"], body["tags"]) == (None, ["x"])
    writer.pending_ids.add("req-pending")
    resp = http.post("/ai/feedback", json={"request_id": "req-pending", "score": 0.25})
    assert resp.status_code == 201
    assert [(r.request_id, r.score, r.raw_score) for r in writer.feedback] == [
        ("req-stored", 1.0, "up"),
        ("req-pending", 0.25, "0.25"),
    ]
    assert datetime.fromisoformat(body["created_at"]).tzinfo is not None


def test_feedback_for_an_unknown_request_is_404_and_nothing_is_stored(
    http: TestClient, parts: tuple[FakeStore, FakeWriter]
) -> None:
    resp = http.post("/ai/feedback", json={"request_id": "nope", "score": 5})
    assert resp.status_code == 404
    error = resp.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "not_found_error",
        "request_not_found",
        "request_id",
    )
    assert parts[1].feedback == []


def test_feedback_errors_are_openai_style(
    http: TestClient, parts: tuple[FakeStore, FakeWriter]
) -> None:
    resp = http.post("/ai/feedback", content=b"{not json", headers={"content-type": "x"})
    assert resp.status_code == 400
    resp = http.post("/ai/feedback", json={"request_id": "req-stored", "score": 7})
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "score"
    resp = http.post("/ai/feedback", content=b"{" + b" " * 70_000 + b"}")
    assert resp.status_code == 413
    parts[0].down = True
    resp = http.post("/ai/feedback", json={"request_id": "req-stored", "score": 1})
    assert resp.status_code == 503
    assert parts[1].feedback == []


def test_disabled_analytics_answer_404_with_the_reason() -> None:
    app = Starlette(
        routes=analytics_app_routes(analytics_endpoints(None, None, BodyLimit(10_000, 30))),
        exception_handlers={GatewayError: _gateway_error},
    )
    with TestClient(app) as client:
        for resp in (
            client.get("/ai/analytics/usage"),
            client.get("/ai/analytics/prompts"),
            client.post("/ai/feedback", json={"request_id": "r", "score": 1}),
        ):
            assert resp.status_code == 404
            assert resp.json()["error"]["code"] == "analytics_disabled"
        assert client.get("/dashboard").status_code == 200


# --- the dashboard's files ---------------------------------------------------------------------

DASHBOARD = resources.files("ai_gateway") / "data" / "dashboard"


@pytest.mark.parametrize(
    ("path", "media_type", "marker"),
    [
        ("/dashboard", "text/html", b'<script type="module" src="/dashboard/app.js">'),
        ("/dashboard/app.js", "text/javascript", b'from "./charts.js"'),
        ("/dashboard/charts.js", "text/javascript", b"export function barChart"),
        ("/dashboard/style.css", "text/css", b"prefers-color-scheme: dark"),
    ],
)
def test_dashboard_files_are_served_with_a_strict_policy(
    http: TestClient, path: str, media_type: str, marker: bytes
) -> None:
    resp = http.get(path)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith(media_type)
    assert marker in resp.content
    policy = resp.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self';" in policy
    assert "connect-src 'self';" in policy
    assert resp.headers["x-content-type-options"] == "nosniff"


def test_other_dashboard_paths_are_404s(http: TestClient) -> None:
    for path in ("/dashboard/nope.js", "/dashboard/index.html", "/dashboard/.%2E%2Fapp.py"):
        resp = http.get(path)
        assert resp.status_code == 404, path
    assert http.get("/dashboard/nope.js").json()["error"]["type"] == "not_found_error"


def test_dashboard_loads_nothing_from_elsewhere() -> None:
    for name in ("index.html", "app.js", "charts.js", "style.css"):
        text = (DASHBOARD / name).read_text()
        # The one absolute URL is the SVG namespace, an identifier that is never fetched.
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"'`)]*", text))
        assert urls <= {"http://www.w3.org/2000/svg"}, (name, urls)
        assert "@import" not in text
        assert "eval(" not in text
        assert "innerHTML = `" not in text  # data is inserted as text, never as markup
