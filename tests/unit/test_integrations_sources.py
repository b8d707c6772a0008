"""ContextSources with a fake HTTP seam (the one class that touches the network): parallel
fetching under the budget, failing open, the breakers, cancellation, storing exchanges; and the
config and contract models. Real sockets: tests/integration/test_integrations.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from ai_gateway.integrations.config import IntegrationsConfig, ServiceConfig, SourceBreakerConfig
from ai_gateway.integrations.contracts import ExchangeMessage, StoreExchangeRequest
from ai_gateway.integrations.http import ServiceHTTP
from ai_gateway.integrations.reasons import Reason, SourceError
from ai_gateway.integrations.sources import ContextQuery, ContextSources, build_context_sources
from harness import free_port

MEMORY = {
    "memories": [
        {"id": "m1", "text": "likes asyncio", "score": 0.9, "created_at": "2025-01-01T00:00:00Z"}
    ],
    "summary": "talked about tasks",
    "added_later": "ignored",
}
PROJECT = {
    "project": {"id": "p1", "name": "P", "description": "d", "languages": ["python"]},
    "snippets": [{"path": "a.py", "content": "x = 1", "score": 0.5}],
}
LEARNING = {"level": "beginner", "goals": ["async"], "preferences": {"languages": ["python"]}}
ANSWERS = {"memories/search": MEMORY, "/context": PROJECT, "/profile": LEARNING, "exchanges": {}}

Behaviour = Callable[[], Any]  # returns the body, or raises


class FakeHTTP(ServiceHTTP):
    """Answers by URL; a test replaces a service's behaviour in `behaviour`."""

    def __init__(self) -> None:
        super().__init__(connect_timeout_s=0.1, max_connections=1)
        self.calls: list[str] = []
        self.cancelled: list[str] = []
        self.behaviour: dict[str, Behaviour] = {}
        self.delay: dict[str, float] = {}

    @staticmethod
    def service(url: str) -> str:
        return url.split("//", 1)[1].split(".", 1)[0]  # http://memory.test/... -> memory

    async def request_json(
        self, method: str, url: str, *, payload: Any = None, timeout_s: float
    ) -> Any:
        name = self.service(url)
        self.calls.append(name)
        try:
            await asyncio.sleep(self.delay.get(name, 0))
        except asyncio.CancelledError:
            self.cancelled.append(name)
            raise
        if name in self.behaviour:
            return self.behaviour[name]()
        return next(body for key, body in ANSWERS.items() if key in url)


def config(**overrides: Any) -> IntegrationsConfig:
    fields: dict[str, Any] = {
        "enabled": True,
        "budget_s": 0.2,
        "memory": ServiceConfig(url="http://memory.test"),
        "project": ServiceConfig(url="http://project.test"),
        "learning": ServiceConfig(url="http://learning.test"),
        "breaker": SourceBreakerConfig(failures=2, cooldown_s=30),
        **overrides,
    }
    return IntegrationsConfig(**fields)


def sources(**overrides: Any) -> tuple[ContextSources, FakeHTTP]:
    http = FakeHTTP()
    return ContextSources(config(**overrides), http), http


QUERY = ContextQuery(user_id="u1", query="how do tasks work", project_id="p1")


def raise_(error: Exception) -> Behaviour:
    def behave() -> Any:
        raise error

    return behave


async def test_every_source_is_used_and_typed() -> None:
    src, http = sources()
    result = await src.fetch(QUERY)
    assert result.header() == "memory=ok, project=ok, learning=ok"
    assert result.used == ("memory", "project", "learning")
    assert result.memory is not None
    assert result.memory.memories[0].id == "m1"
    assert result.project is not None
    assert result.project.snippets[0].path == "a.py"
    assert result.learning is not None
    assert result.learning.level == "beginner"
    assert sorted(http.calls) == ["learning", "memory", "project"]


async def test_only_the_sources_asked_for_that_can_be_asked_are_called() -> None:
    src, http = sources(learning=ServiceConfig(url="http://learning.test", enabled=False))
    no_project = ContextQuery(user_id="u1", query="q")
    assert (await src.fetch(no_project)).header() == "memory=ok"
    assert (await src.fetch(QUERY, sources={"project", "learning"})).header() == "project=ok"
    assert (await src.fetch(no_project, sources=())).statuses == ()
    assert http.calls == ["memory", "project"]


async def test_a_slow_source_is_cut_off_at_the_budget_and_the_others_used() -> None:
    src, http = sources(budget_s=0.05)
    http.delay["project"] = 10.0
    result = await src.fetch(QUERY)
    assert result.header() == "memory=ok, project=timeout, learning=ok"
    assert result.project is None
    assert result.memory is not None
    assert http.cancelled == ["project"]  # its call was cancelled, not left running
    status = result.status("project")
    assert status is not None
    assert status.detail == "overall budget"


@pytest.mark.parametrize(
    ("behaviour", "reason", "detail"),
    [
        (raise_(SourceError(Reason.UNAVAILABLE, "HTTP 503")), "unavailable", "HTTP 503"),
        (raise_(SourceError(Reason.TIMEOUT, "TimeoutError")), "timeout", "TimeoutError"),
        (lambda: {"level": "guru"}, "bad_response", "level: literal_error"),
        (lambda: ["not", "an", "object"], "bad_response", "model_type"),
        (raise_(RuntimeError("a bug")), "bad_response", "RuntimeError"),
    ],
)
async def test_a_failing_source_is_dropped_with_its_reason(
    behaviour: Behaviour, reason: str, detail: str
) -> None:
    src, http = sources()
    http.behaviour["learning"] = behaviour
    result = await src.fetch(QUERY)
    assert result.header() == f"memory=ok, project=ok, learning={reason}"
    assert result.learning is None
    status = result.status("learning")
    assert status is not None
    assert detail in status.detail


async def test_after_n_failures_the_source_is_skipped_without_a_call() -> None:
    src, http = sources(breaker=SourceBreakerConfig(failures=2, cooldown_s=30))
    http.behaviour["memory"] = raise_(SourceError(Reason.UNAVAILABLE, "HTTP 500"))
    for _ in range(2):
        assert (await src.fetch(QUERY)).status("memory").reason == "unavailable"  # type: ignore[union-attr]
    assert http.calls.count("memory") == 2
    result = await src.fetch(QUERY)
    assert result.header() == "memory=circuit_open, project=ok, learning=ok"
    assert http.calls.count("memory") == 2


async def test_a_budget_cut_counts_as_a_failure() -> None:
    src, http = sources(budget_s=0.02, breaker=SourceBreakerConfig(failures=2, cooldown_s=30))
    http.delay["project"] = 10.0
    await src.fetch(QUERY)
    await src.fetch(QUERY)
    assert (await src.fetch(QUERY)).status("project").reason == "circuit_open"  # type: ignore[union-attr]


async def test_not_found_and_forbidden_do_not_open_the_circuit() -> None:
    src, http = sources(breaker=SourceBreakerConfig(failures=1, cooldown_s=30))
    http.behaviour["project"] = raise_(SourceError(Reason.NOT_FOUND, "HTTP 404"))
    http.behaviour["learning"] = raise_(SourceError(Reason.FORBIDDEN, "HTTP 403"))
    for _ in range(3):
        result = await src.fetch(QUERY)
        assert result.header() == "memory=ok, project=not_found, learning=forbidden"


async def test_a_cancelled_fetch_cancels_its_calls_and_frees_the_probe() -> None:
    clock = [0.0]
    http = FakeHTTP()
    src = ContextSources(
        config(breaker=SourceBreakerConfig(failures=1, cooldown_s=1)), http, clock=lambda: clock[0]
    )
    http.behaviour["memory"] = raise_(SourceError(Reason.UNAVAILABLE, "x"))
    await src.fetch(QUERY)
    clock[0] = 2.0  # the cooldown is over: the next call is the probe
    del http.behaviour["memory"]
    http.delay["memory"] = 10.0
    task = asyncio.create_task(src.fetch(QUERY))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert "memory" in http.cancelled
    http.delay.clear()
    assert (await src.fetch(QUERY)).status("memory").reason == "ok"  # type: ignore[union-attr]


async def test_storing_an_exchange() -> None:
    src, http = sources(breaker=SourceBreakerConfig(failures=1, cooldown_s=30))
    exchange = StoreExchangeRequest(
        user_id="u1",
        request_id="r1",
        messages=(ExchangeMessage(role="user", content="hi"),),
        answer="hello",
    )
    http.behaviour["memory"] = lambda: {"id": "ex-1"}
    status = await src.store_exchange(exchange)
    assert status is not None
    assert status.used
    http.behaviour["memory"] = raise_(SourceError(Reason.UNAVAILABLE, "HTTP 502"))
    status = await src.store_exchange(exchange)
    assert status is not None
    assert status.reason == "unavailable"
    status = await src.store_exchange(exchange)
    assert status is not None
    assert status.reason == "circuit_open"
    off, _ = sources(memory=ServiceConfig(url="http://memory.test", enabled=False))
    assert await off.store_exchange(exchange) is None


async def test_failures_are_logged_without_the_token() -> None:
    token = "svc-token-do-not-log-1234"
    src = build_context_sources(
        config(
            token=token,
            learning=ServiceConfig(url=f"http://127.0.0.1:{free_port()}", timeout_s=0.5),
        )
    )
    try:
        with capture_logs() as logs:
            result = await src.fetch(ContextQuery(user_id="u1", query="q"), sources={"learning"})
    finally:
        await src.aclose()
    assert result.header() == "learning=unavailable"
    assert logs
    assert logs[0]["event"] == "context_source_failed"
    assert token not in repr(logs) + repr(result) + repr(src.__dict__)


def test_config_defaults_and_validation() -> None:
    default = IntegrationsConfig()
    assert not default.enabled
    assert default.budget_s == 0.3
    assert [default.memory.url, default.project.url, default.learning.url] == [
        "http://127.0.0.1:3003",
        "http://127.0.0.1:3004",
        "http://127.0.0.1:3005",
    ]
    assert (default.breaker.failures, default.breaker.cooldown_s) == (5, 30.0)
    assert IntegrationsConfig(token="").token is None
    assert "s3cret-token" not in repr(IntegrationsConfig(token="s3cret-token"))
    assert (
        IntegrationsConfig.model_validate({"memory": {"url": "http://m/"}}).memory.url == "http://m"
    )
    for bad in ({"memory": {"url": "ftp://m"}}, {"budget_s": 0}, {"unknown": 1}):
        with pytest.raises(ValidationError):
            IntegrationsConfig.model_validate(bad)


@pytest.mark.parametrize("user_id", ["", ".", "..", "x" * 257])
def test_ids_that_would_change_the_url_path_are_refused(user_id: str) -> None:
    with pytest.raises(ValidationError):
        ContextQuery(user_id=user_id, query="q")
