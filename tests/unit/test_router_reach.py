"""The router with a fake upstream call: which fallbacks a request may reach (RouteRequest.reach),
when it is asked, and what a mid-stream failure does to a deployment's circuit."""

from __future__ import annotations

import random

import pytest

from ai_gateway.errors import (
    GatewayError,
    GuardrailBlockedError,
    UpstreamError,
    UpstreamUnavailableError,
)
from ai_gateway.model_registry import ModelRegistry
from ai_gateway.observability.metrics import Metrics
from ai_gateway.routing.breaker import BreakerState, CircuitBreaker
from ai_gateway.routing.config import BreakerConfig, RouterConfig
from ai_gateway.routing.context_window import ContextWindowManager
from ai_gateway.routing.deployments import Deployment, DeploymentTable
from ai_gateway.routing.request import JSONObject, RouteRequest, Trace
from ai_gateway.routing.router import Router
from ai_gateway.routing.stats import DeploymentStats
from ai_gateway.usage.tokens import TokenCounter

NAMES = ("a", "b", "c")


def deployment(name: str) -> Deployment:
    return Deployment(id=f"{name}/0", group=name, provider="openai", model=f"m-{name}", api_base="")


def make_router(**config: object) -> tuple[Router, CircuitBreaker]:
    table = DeploymentTable({n: (deployment(n),) for n in NAMES}, providers={})
    registry = ModelRegistry([])
    breaker = CircuitBreaker(BreakerConfig(failures=2, window_s=60, cooldown_s=60))
    router = Router(
        table,
        RouterConfig.model_validate({"retries": 0, **config}),
        stats=DeploymentStats(),
        breaker=breaker,
        windows=ContextWindowManager(TokenCounter(), registry),
        registry=registry,
        metrics=Metrics(),
        rng=random.Random(1),
    )
    return router, breaker


class Upstream:
    """Fails for the names in `failing`, answers for the others; records who was called."""

    def __init__(self, *failing: str) -> None:
        self.failing = set(failing)
        self.called: list[str] = []

    async def __call__(self, deployment: Deployment, body: JSONObject) -> str:
        self.called.append(deployment.group)
        if deployment.group in self.failing:
            raise UpstreamUnavailableError(f"{deployment.group} is down")
        return deployment.group


class Gate:
    """A fake `reach`: refuses the names in `refused`; records what it was asked."""

    def __init__(self, *refused: str) -> None:
        self.refused = set(refused)
        self.asked: list[str] = []

    async def __call__(self, name: str) -> bool:
        self.asked.append(name)
        return name not in self.refused


async def test_a_refused_fallback_is_skipped_for_the_next() -> None:
    router, _ = make_router(fallbacks={"a": ["b", "c"]})
    upstream, gate = Upstream("a"), Gate("b")
    trace = Trace(requested="a")
    result = await router.run(RouteRequest(model="a", body={}, call=upstream, reach=gate), trace)
    assert result == "c"
    assert upstream.called == ["a", "c"]
    assert gate.asked == ["b", "c"]  # never asked about the requested name
    assert trace.fallbacks == ["c"]


async def test_with_every_fallback_refused_the_requested_names_error_stands() -> None:
    router, _ = make_router(fallbacks={"a": ["b", "c"]})
    upstream = Upstream("a")
    request = RouteRequest(model="a", body={}, call=upstream, reach=Gate("b", "c"))
    with pytest.raises(UpstreamUnavailableError, match="a is down"):
        await router.run(request, Trace(requested="a"))
    assert upstream.called == ["a"]


async def test_reach_is_asked_only_for_a_fallback_the_router_moves_to() -> None:
    # A fallback's limits are taken when the request moves there, not for every name listed.
    router, _ = make_router(fallbacks={"a": ["b", "c"]})
    upstream, gate = Upstream("a"), Gate()
    request = RouteRequest(model="a", body={}, call=upstream, reach=gate)
    assert await router.run(request, Trace("a")) == "b"
    assert gate.asked == ["b"]
    upstream.failing.clear()
    gate.asked.clear()
    assert await router.run(request, Trace("a")) == "a"
    assert gate.asked == []


@pytest.mark.parametrize(
    ("error", "counts"),
    [
        (UpstreamError("cut mid-stream"), True),
        (GuardrailBlockedError("blocked by a content rule"), False),
    ],
)
async def test_a_failure_after_the_first_token_counts_against_the_circuit(
    error: GatewayError, counts: bool
) -> None:
    router, breaker = make_router()
    dep = deployment("a")
    for _ in range(2):  # the threshold is 2
        await router.stream_failed(dep, error)
    expected = BreakerState.OPEN if counts else BreakerState.CLOSED
    assert breaker.state(dep.id) is expected
