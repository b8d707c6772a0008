"""The dashboard in a real browser: headless Debian Chromium driven by Playwright, against a
gateway that has served real requests through the emulator (and, for the response cache's
cards, the analytics routes fed records with each cache status).

Needs /usr/bin/chromium (scripts/test installs the Debian package) and the `playwright` Python
package (no browser download: Playwright drives the system Chromium). Without them the browser
tests skip, except under CI=true, where they fail; the test that the page's cards read the
usage report's fields needs neither. The main test saves a screenshot to
test-artifacts/dashboard.png.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from ai_gateway.stores.analytics_sqlite import SQLiteAnalyticsStore
from analytics_support import usage_record
from conftest import GatewayFactory, emulator_yaml
from harness import EmulatorServer, GatewayServer
from reports_support import ReportsServer

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
MASTER_KEY = "sk-dashboard-master-0000"
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
CHARTS = ("requests", "tokens", "cost", "latency", "errors", "feedback")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (required when CI=true)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[dev]')")
    if not CHROMIUM.exists():
        _unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Page:
    """A browser tab on the gateway that records console errors and off-gateway requests."""

    def __init__(self, browser: Any, base: str, width: int = 1400, height: int = 900) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.base = base
        self.problems: list[str] = []
        self.page.on(
            "console",
            lambda m: (
                self.problems.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning")
                else None
            ),
        )
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on(
            "request",
            lambda r: (
                None
                if r.url.startswith((base, "data:"))
                else self.problems.append(f"off-gateway request: {r.url}")
            ),
        )

    def wait_state(self, state: str) -> None:
        try:
            self.page.wait_for_selector(f"body[data-state={state}]", timeout=15_000)
        except Exception:
            shown = self.page.get_attribute("body", "data-state")
            status = self.page.inner_text("#status")
            raise AssertionError(
                f"the page did not reach {state!r}: it is {shown!r}, status {status!r}, "
                f"problems {self.problems}"
            ) from None

    def enter_key(self, key: str) -> None:
        self.page.wait_for_selector("#key-dialog[open]", timeout=15_000)
        self.page.fill("#key-input", key)
        self.page.click("#key-form button[type=submit]")

    def attr(self, selector: str, name: str) -> str | None:
        value: str | None = self.page.get_attribute(selector, name)
        return value

    def count(self, selector: str) -> int:
        return int(self.page.locator(selector).count())

    def text(self, selector: str) -> str:
        return str(self.page.inner_text(selector))

    def close(self) -> None:
        self.context.close()


def serve_traffic(gw: GatewayServer, emu: EmulatorServer) -> tuple[list[str], str]:
    """Plain and streamed chat requests, one failure and one piece of feedback."""
    ok: list[str] = []
    with httpx.Client(base_url=gw.url, headers=AUTH, timeout=30) as client:
        for i in range(3):
            body = {"model": "fast", "messages": [{"role": "user", "content": f"chart me {i}"}]}
            resp = client.post("/v1/chat/completions", json=body)
            assert resp.status_code == 200
            ok.append(resp.headers["x-request-id"])
        stream = {**body, "stream": True, "stream_options": {"include_usage": True}}
        with client.stream("POST", "/v1/chat/completions", json=stream) as streamed:
            assert streamed.status_code == 200
            streamed.read()
        emu.add_faults({"kind": "status", "status": 500, "provider": "openai"})
        failed = client.post(
            "/v1/chat/completions",
            json={"model": "fast", "messages": [{"role": "user", "content": "fail"}]},
        )
        assert failed.status_code == 502
        feedback = client.post("/ai/feedback", json={"request_id": ok[0], "score": "up"})
        assert feedback.status_code == 201
    return ok, failed.headers["x-request-id"]


def gateway_yaml(emu: EmulatorServer, data_dir: Path) -> str:
    return emulator_yaml(emu, f'gateway: {{data_dir: "{data_dir}", master_key: "{MASTER_KEY}"}}')


def test_dashboard_draws_the_gateways_traffic(
    browser: Any, start_gateway: GatewayFactory, emu: EmulatorServer, tmp_path: Path
) -> None:
    gw = start_gateway(gateway_yaml(emu, tmp_path))
    _, failed_id = serve_traffic(gw, emu)
    tab = Page(browser, gw.url)
    try:
        tab.page.goto(f"{gw.url}/dashboard")
        # No key yet: the API answers 401 and the page asks for the key.
        tab.enter_key(MASTER_KEY)
        tab.wait_state("ready")
        assert tab.text("#card-requests") == "5"
        assert tab.text("#card-errors").startswith("1 ")
        assert tab.text("#card-cost").startswith("$")
        assert tab.text("#card-cost") != "$0"
        # No response cache here: no lookups, so no hit rate, and nothing saved.
        assert tab.text("#card-cache").split("\n") == ["\u2013", "no lookups"]  # an en dash
        assert tab.text("#card-saved").split("\n") == ["$0", "0 tokens"]
        for name in CHARTS:
            assert tab.attr(f"#chart-{name}", "data-rendered") == "true", name
        for name in ("requests", "tokens", "cost", "errors"):
            assert tab.count(f"#chart-{name} svg .bars rect") >= 1, name
            assert "fast" in tab.text(f"#chart-{name} .legend"), name
        assert tab.count("#chart-latency svg path.line") == 2  # p50 and p95 of one model
        assert tab.count("#chart-feedback svg rect") == 1
        assert "1 rating ·" in tab.text("#chart-feedback .legend")
        models = tab.text("#models-table tbody")
        assert "fast\tfast/0\t5\t20%" in models  # the failed request is counted on fast/0
        assert failed_id in tab.text("#errors-table tbody")
        assert "No requests rendered from a prompt template" in tab.text("#prompts-table tbody")
        assert "upstream_error" in tab.text("#error-types")
        # A shorter range re-queries (and narrower buckets spread the bars out).
        tab.page.select_option("#range", "1h")
        tab.page.wait_for_selector("#status:has-text('the last hour')", timeout=15_000)
        assert tab.page.url.endswith("#range=1h")
        assert tab.attr("#chart-requests", "data-rendered") == "true"
        ARTIFACTS.mkdir(exist_ok=True)
        tab.page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        # The key is remembered for the tab, the range in the address: a reload keeps both.
        tab.page.reload()
        tab.wait_state("ready")
        assert tab.page.input_value("#range") == "1h"
        assert tab.page.is_hidden("#key-dialog")
        assert [p for p in tab.problems if "401" not in p] == []
    finally:
        tab.close()


def test_wrong_key_is_asked_for_again_and_an_empty_range_says_so(
    browser: Any, start_gateway: GatewayFactory, emu: EmulatorServer, tmp_path: Path
) -> None:
    gw = start_gateway(gateway_yaml(emu, tmp_path))
    tab = Page(browser, gw.url, width=390, height=844)  # a phone
    try:
        tab.page.goto(f"{gw.url}/dashboard")
        tab.enter_key("sk-wrong")
        tab.wait_state("auth")
        tab.page.wait_for_selector("#key-dialog[open]")
        assert "rejected" in tab.text("#key-reason")
        tab.page.fill("#key-input", MASTER_KEY)
        tab.page.click("#key-form button[type=submit]")
        tab.wait_state("empty")
        assert tab.text("#card-requests") == "0"
        assert tab.text("#card-cache").startswith("\u2013")
        for name in CHARTS:
            assert tab.attr(f"#chart-{name}", "data-rendered") == "empty", name
        assert "No requests in the last 24 hours" in tab.text("#chart-requests")
        assert "No feedback" in tab.text("#chart-feedback")
        overflow = tab.page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, "the page scrolls sideways on a phone"
        # The browser's own 401s are expected here; nothing else may go wrong.
        assert [p for p in tab.problems if "401" not in p] == []
    finally:
        tab.close()


def test_the_summary_cards_show_the_usage_reports_totals(
    start_gateway: GatewayFactory, emu: EmulatorServer, tmp_path: Path
) -> None:
    """Without a browser: every total the page's script reads is a field of the usage report it
    asks for (the cache's hit rate and savings among them), and every card it fills is on the
    page."""
    gw = start_gateway(gateway_yaml(emu, tmp_path))
    with httpx.Client(base_url=gw.url, headers=AUTH, timeout=30) as client:
        script = client.get("/dashboard/app.js").text
        page = client.get("/dashboard").text
        usage = client.get("/ai/analytics/usage", params={"start": "24h", "group_by": "model"})
    assert usage.status_code == 200
    assert 'api("/usage", { ...p, group_by: "model" })' in script
    assert "const t = d.usage.totals;" in script
    read = set(re.findall(r"\bt\.([a-z_]+)", script))  # the fields of `t`, the totals
    cache = {"cache_hits", "cache_lookups", "cache_hit_rate", "saved_tokens", "saved_cost_usd"}
    assert cache <= read
    assert read <= set(usage.json()["totals"]), read - set(usage.json()["totals"])
    cards = set(re.findall(r'(?:\$|setCard)\("(card-[a-z]+)"', script))
    assert {"card-cache", "card-saved", "card-cost"} <= cards
    for card in cards:
        assert f'<dd id="{card}">' in page, card


def test_dashboard_shows_the_cache_hit_rate_and_savings(browser: Any, tmp_path: Path) -> None:
    """A request with each cache status (the gateway's cache is another part: these are fed to
    the analytics routes' writer and store directly); the cards show hits out of lookups and
    what the hits saved."""
    server = ReportsServer(SQLiteAnalyticsStore(tmp_path / "analytics.db"))
    at = datetime.now(UTC) - timedelta(minutes=5)
    saved = {"hit": (40, Decimal("0.000012")), "semantic-hit": (25, Decimal("0.000008"))}
    statuses = ("off", "miss", "hit", "semantic-hit", "bypass", "refresh")
    server.submit(
        *(
            usage_record(
                f"r-{status}",
                created_at=at,
                cache_status=status,
                saved_tokens=saved.get(status, (0, None))[0],
                saved_cost_usd=saved.get(status, (0, None))[1],
            )
            for status in statuses
        )
    )
    tab = Page(browser, server.url)
    try:
        tab.page.goto(f"{server.url}/dashboard")  # no master key on these routes
        tab.wait_state("ready")
        assert tab.text("#card-requests") == "6"
        assert tab.text("#card-cache").split("\n") == ["50%", "2 of 4 lookups"]
        assert tab.text("#card-saved").split("\n") == ["$0.00002", "65 tokens"]
        title = tab.attr("#card-saved", "title") or ""
        assert title.startswith("65 prompt + completion tokens served from the cache")
        assert tab.problems == []
    finally:
        tab.close()
        server.stop()


def test_dashboard_compares_prompt_template_versions(browser: Any, tmp_path: Path) -> None:
    """Requests rendered from two versions of a template (fed to the analytics routes' writer
    and store, with feedback over the API): one table row per version, with its requests, error
    rate, tokens, cost, latency and feedback."""
    server = ReportsServer(SQLiteAnalyticsStore(tmp_path / "analytics.db"))
    at = datetime.now(UTC) - timedelta(minutes=5)
    version = {"created_at": at, "prompt_id": "review", "cost_usd": Decimal("0.5")}
    server.submit(
        usage_record("p1", **version, prompt_version=1, latency_ms=100.0),
        usage_record("p2", **version, prompt_version=1, latency_ms=300.0, status=500),
        usage_record("p3", **version, prompt_version=2, latency_ms=1500.0),
        usage_record("plain", created_at=at),  # no template: not a row
    )
    rated = server.http.post("/ai/feedback", json={"request_id": "p1", "score": "up"})
    assert rated.status_code == 201
    tab = Page(browser, server.url)
    try:
        tab.page.goto(f"{server.url}/dashboard")
        tab.wait_state("ready")
        rows = tab.text("#prompts-table tbody").split("\n")
        assert rows == [
            "review\t1\t2\t50%\t20\t10\t30\t$1.00\t200 ms\t290 ms\t1.00 (n=1)",
            "review\t2\t1\t0%\t10\t5\t15\t$0.50\t1.50 s\t1.50 s\t\u2013",
        ]
        assert tab.problems == []
    finally:
        tab.close()
        server.stop()
