"""The analytics writer is visible: its backlog, writes, failures and drops in /metrics, and
its store in /health/ready, truthfully while PostgreSQL is down (reached through a TCP proxy
that is stopped and started again). Requests keep flowing and nothing is lost."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from analytics_support import TcpProxy, throwaway_database, via_port
from conftest import GatewayFactory, emulator_yaml
from harness import EmulatorServer, LoopThread

pytestmark = pytest.mark.integration

BODY = {"model": "fast", "messages": [{"role": "user", "content": "hello"}]}


def series(gw_url: str) -> dict[str, float]:
    text = httpx.get(f"{gw_url}/metrics").text
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        if family.name.startswith("ai_gateway_analytics_")
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def analytics_check(gw_url: str) -> tuple[int, dict[str, object]]:
    resp = httpx.get(f"{gw_url}/health/ready", timeout=10)
    return resp.status_code, resp.json()["checks"]["analytics"]


def until(predicate: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    thread = LoopThread("proxy")
    yield thread
    thread.stop()


def test_a_postgres_outage_shows_in_metrics_and_readiness(
    start_gateway: GatewayFactory, emu: EmulatorServer, loop: LoopThread
) -> None:
    with throwaway_database() as url:
        target = urlsplit(url)
        proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
        loop.run(proxy.start())
        gw = start_gateway(emulator_yaml(emu), database_url=via_port(url, proxy.port))
        assert httpx.post(f"{gw.url}/v1/chat/completions", json=BODY).status_code == 200
        until(lambda: series(gw.url).get("ai_gateway_analytics_records_written_total", 0) >= 1)
        status, check = analytics_check(gw.url)
        assert status == 200
        assert check["status"] == "ok"
        assert check["required"] is False
        assert series(gw.url)["ai_gateway_analytics_store_up"] == 1

        loop.run(proxy.stop())  # the database goes away
        for _ in range(5):  # requests keep flowing
            assert httpx.post(f"{gw.url}/v1/chat/completions", json=BODY).status_code == 200
        until(lambda: series(gw.url)["ai_gateway_analytics_store_up"] == 0)
        now = series(gw.url)
        assert now["ai_gateway_analytics_pending_records"] == 5
        assert now["ai_gateway_analytics_write_failures_total"] >= 1
        assert now["ai_gateway_analytics_records_dropped_total"] == 0
        status, check = analytics_check(gw.url)
        assert status == 200  # not required: the gateway stays in rotation
        assert check["status"] == "down"
        assert "5 records pending" in str(check["detail"])
        assert url not in str(check["detail"])

        loop.run(proxy.start())  # it comes back on the same port
        until(lambda: series(gw.url)["ai_gateway_analytics_pending_records"] == 0, 30)
        after = series(gw.url)
        assert after["ai_gateway_analytics_records_written_total"] == 6
        assert after["ai_gateway_analytics_store_up"] == 1
        until(lambda: analytics_check(gw.url)[1]["status"] == "ok")
        gw.stop()
        loop.run(proxy.stop())


def test_drops_are_counted_when_the_buffer_is_full(
    start_gateway: GatewayFactory, emu: EmulatorServer, loop: LoopThread
) -> None:
    with throwaway_database() as url:
        target = urlsplit(url)
        proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
        loop.run(proxy.start())
        gw = start_gateway(
            emulator_yaml(emu), database_url=via_port(url, proxy.port), analytics_buffer=100
        )
        loop.run(proxy.stop())
        with httpx.Client(base_url=gw.url) as client:
            for _ in range(103):
                assert client.post("/v1/chat/completions", json=BODY).status_code == 200
        now = series(gw.url)
        assert now["ai_gateway_analytics_pending_records"] == 100
        assert now["ai_gateway_analytics_records_dropped_total"] == 3
        _, check = analytics_check(gw.url)
        assert check["status"] == "down"
        assert "3 dropped" in str(check["detail"])
        loop.run(proxy.start())
        gw.stop()
        loop.run(proxy.stop())
