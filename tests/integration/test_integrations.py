"""The context sources against the Memory, Project and Learning service emulators, each a real
server on its own socket: parallel fetching under the budget, failing open (slow, down, broken
and refused services), the breaker, the service token, and storing an exchange."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from ai_gateway.emulator.services import ServiceFaults, ServiceSettings
from ai_gateway.integrations.config import ServiceConfig, SourceBreakerConfig
from ai_gateway.integrations.contracts import ExchangeMessage, StoreExchangeRequest
from ai_gateway.integrations.sources import ContextQuery, ContextSources, build_context_sources
from harness import free_port
from services_support import ServiceEmulators

pytestmark = pytest.mark.integration

ALICE = ContextQuery(user_id="u-alice", query="python asyncio tasks", project_id="p-gateway")
TOKEN = "svc-token-for-tests-5f3a9c"


@pytest.fixture
def services() -> Iterator[ServiceEmulators]:
    emulators = ServiceEmulators()
    yield emulators
    emulators.stop()


class Clock:
    """The monotonic clock, which a test can move forward (past a breaker's cooldown)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


class Sources:
    """Builds ContextSources from configs and closes them all at the end of the test."""

    def __init__(self) -> None:
        self.built: list[ContextSources] = []

    def __call__(
        self, services: ServiceEmulators, clock: Clock | None = None, **overrides: Any
    ) -> ContextSources:
        sources = build_context_sources(services.config(**overrides), clock=clock or Clock())
        self.built.append(sources)
        return sources


@pytest.fixture
async def make_sources() -> AsyncIterator[Sources]:
    factory = Sources()
    yield factory
    for sources in factory.built:
        await sources.aclose()


async def test_all_three_answer_with_their_seeded_data(
    services: ServiceEmulators, make_sources: Sources
) -> None:
    result = await make_sources(services).fetch(ALICE)
    assert result.header() == "memory=ok, project=ok, learning=ok"
    assert result.memory is not None
    assert result.memory.memories[0].id == "m-a1"
    assert result.memory.summary is not None
    assert result.project is not None
    assert result.project.project.name == "LLM gateway"
    assert result.learning is not None
    assert result.learning.level == "beginner"
    [search] = services.requests("memory")
    assert search["body"] == {"user_id": "u-alice", "query": ALICE.query, "limit": 5}


async def test_the_three_are_asked_in_parallel(
    services: ServiceEmulators, make_sources: Sources
) -> None:
    # Each takes 0.2 s and the budget is 0.5 s: one after the other (0.6 s) the last would be
    # cut off. The emulators' logs show the three requests were all in flight at once.
    for name in ("memory", "project", "learning"):
        services.faults(name, latency_s=0.2)
    result = await make_sources(services, budget_s=0.5).fetch(ALICE)
    assert result.header() == "memory=ok, project=ok, learning=ok"
    entries = [services.requests(name)[0] for name in ("memory", "project", "learning")]
    assert max(e["received"] for e in entries) < min(e["answered"] for e in entries)


async def test_a_slow_source_is_cut_off_at_the_budget(
    services: ServiceEmulators, make_sources: Sources
) -> None:
    services.faults("project", latency_s=3.0)
    result = await make_sources(services, budget_s=0.3, timeout_s=10.0).fetch(ALICE)
    assert result.header() == "memory=ok, project=timeout, learning=ok"
    assert result.project is None
    assert result.memory is not None
    assert result.learning is not None
    # The answer did not wait for the slow service: it has not answered yet.
    [slow] = services.requests("project")
    assert slow["answered"] is None


async def test_a_source_timeout_shorter_than_the_budget_is_its_own(
    services: ServiceEmulators, make_sources: Sources
) -> None:
    services.faults("learning", latency_s=2.0)
    quick = ServiceConfig(url=services.urls["learning"], timeout_s=0.1)
    result = await make_sources(services, budget_s=5.0, learning=quick).fetch(ALICE)
    assert result.header() == "memory=ok, project=ok, learning=timeout"
    status = result.status("learning")
    assert status is not None
    assert status.detail != "overall budget"


async def test_a_closed_port_is_unavailable_and_the_rest_are_used(
    services: ServiceEmulators, make_sources: Sources
) -> None:
    down = ServiceConfig(url=f"http://127.0.0.1:{free_port()}")
    sources = make_sources(services, learning=down)
    result = await sources.fetch(ALICE)
    assert result.header() == "memory=ok, project=ok, learning=unavailable"
    assert result.used == ("memory", "project")


async def test_a_service_that_drops_the_connection_is_unavailable(
    services: ServiceEmulators, make_sources: Sources
) -> None:
    services.faults("memory", down=True)
    result = await make_sources(services).fetch(ALICE)
    assert result.header() == "memory=unavailable, project=ok, learning=ok"


@pytest.mark.parametrize("malformed", ["json", "shape"])
async def test_a_broken_answer_is_bad_response(
    services: ServiceEmulators, make_sources: Sources, malformed: str
) -> None:
    services.faults("memory", malformed=malformed)
    result = await make_sources(services).fetch(ALICE)
    assert result.header() == "memory=bad_response, project=ok, learning=ok"
    assert result.memory is None


async def test_after_n_failures_the_breaker_skips_the_source_at_once(
    services: ServiceEmulators, make_sources: Sources
) -> None:
    services.faults("memory", status=503)
    clock = Clock()
    breaker = SourceBreakerConfig(failures=3, cooldown_s=30)
    sources = make_sources(services, clock, breaker=breaker)
    for _ in range(3):
        assert (await sources.fetch(ALICE)).header().startswith("memory=unavailable,")
    assert len(services.requests("memory")) == 3
    skipped = await sources.fetch(ALICE)
    assert skipped.header() == "memory=circuit_open, project=ok, learning=ok"
    assert len(services.requests("memory")) == 3  # no request went out
    # The service recovers; after the cooldown one probe closes the circuit.
    services.faults("memory", status=None)
    clock.offset += 30
    assert (await sources.fetch(ALICE)).header() == "memory=ok, project=ok, learning=ok"
    assert (await sources.fetch(ALICE)).header() == "memory=ok, project=ok, learning=ok"
    assert len(services.requests("memory")) == 5


async def test_unknown_and_forbidden_are_reported_and_do_not_trip_the_breaker(
    services: ServiceEmulators, make_sources: Sources
) -> None:
    sources = make_sources(services, breaker=SourceBreakerConfig(failures=1, cooldown_s=60))
    stranger = ContextQuery(user_id="u-nobody", query="rust", project_id="p-missing")
    carol_on_gateway = ContextQuery(user_id="u-carol", query="router", project_id="p-gateway")
    for _ in range(2):
        assert (await sources.fetch(stranger)).header() == (
            "memory=ok, project=not_found, learning=not_found"
        )
        assert (await sources.fetch(carol_on_gateway)).header() == (
            "memory=ok, project=forbidden, learning=ok"
        )


async def test_the_service_token_is_sent_and_never_shown(make_sources: Sources) -> None:
    settings = ServiceSettings(tokens=frozenset({TOKEN}))
    services = ServiceEmulators(dict.fromkeys(("memory", "project", "learning"), settings))
    try:
        good = await make_sources(services, token=TOKEN).fetch(ALICE)
        assert good.header() == "memory=ok, project=ok, learning=ok"
        assert services.requests("learning")[0]["headers"]["Authorization"] == f"Bearer {TOKEN}"
        wrong = "svc-token-wrong-0000"
        with capture_logs() as logs:
            refused = await make_sources(services, token=wrong).fetch(ALICE)
            missing = await make_sources(services).fetch(ALICE)
    finally:
        services.stop()
    assert refused.header() == "memory=unauthorized, project=unauthorized, learning=unauthorized"
    assert missing.header() == refused.header()
    assert {(log["event"], log["reason"]) for log in logs} == {
        ("context_source_failed", "unauthorized")
    }
    seen = repr(logs) + repr(refused) + repr(missing)
    assert TOKEN not in seen
    assert wrong not in seen


async def test_a_stored_exchange_is_remembered(
    services: ServiceEmulators, make_sources: Sources
) -> None:
    sources = make_sources(services)
    exchange = StoreExchangeRequest(
        user_id="u-carol",
        request_id="req-1",
        project_id="p-todo",
        messages=(ExchangeMessage(role="user", content="How do reducers compose?"),),
        answer="With combineReducers.",
    )
    status = await sources.store_exchange(exchange)
    assert status is not None
    assert status.used
    found = await sources.fetch(
        ContextQuery(user_id="u-carol", query="reducers compose"), sources={"memory"}
    )
    assert found.memory is not None
    assert [m.text for m in found.memory.memories] == [
        "Q: How do reducers compose? A: With combineReducers."
    ]


async def test_faults_can_be_set_at_start(make_sources: Sources) -> None:
    failing = ServiceSettings(faults=ServiceFaults(status=500))
    services = ServiceEmulators({"project": failing})
    try:
        result = await make_sources(services).fetch(ALICE)
    finally:
        services.stop()
    assert result.header() == "memory=ok, project=unavailable, learning=ok"
