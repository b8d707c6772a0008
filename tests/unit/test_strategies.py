from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence

import pytest

from ai_gateway.errors import InternalError, UpstreamRateLimitError
from ai_gateway.model_registry import ModelRegistry, parse_registry
from ai_gateway.routing.config import STRATEGIES, StrategyName
from ai_gateway.routing.deployments import Deployment
from ai_gateway.routing.stats import DeploymentStats
from ai_gateway.routing.strategies import (
    CapacityExceededError,
    ChoiceContext,
    build_strategy,
)
from ai_gateway.routing.usage import Bucket, LocalUsageWindow, UsageUnavailableError, UsageWindow

DRAWS = 4000
T0 = 1_700_000_000.0


def dep(
    dep_id: str,
    *,
    weight: float = 1.0,
    model: str = "cheap",
    rpm: int | None = None,
    tpm: int | None = None,
) -> Deployment:
    return Deployment(
        id=dep_id,
        group="g",
        provider="openai",
        model=model,
        api_base="http://upstream.invalid/v1",
        weight=weight,
        rpm=rpm,
        tpm=tpm,
    )


def registry() -> ModelRegistry:
    def chat(model_id: str, **prices: str) -> dict[str, object]:
        model = {"id": model_id, "provider": "openai", "mode": "chat", "context_window": 8192}
        return {**model, **prices}

    return parse_registry(
        {
            "models": [
                chat("cheap", input_price="0.10", output_price="0.40"),
                chat("pricey", input_price="2.50", output_price="10.00"),
                chat("cheap-too", input_price="0.30", output_price="0.20"),  # same sum
                chat("input-only", input_price="0.01"),
            ]
        },
        "test",
    )


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def context(
    *,
    stats: DeploymentStats | None = None,
    usage: UsageWindow | None = None,
    stream: bool = False,
    estimated_tokens: int = 0,
    seed: int = 7,
) -> ChoiceContext:
    return ChoiceContext(
        stats=stats or DeploymentStats(),
        registry=registry(),
        usage=usage,
        rng=random.Random(seed),
        stream=stream,
        estimated_tokens=estimated_tokens,
    )


async def draw(
    name: StrategyName, candidates: Sequence[Deployment], ctx: ChoiceContext, n: int = DRAWS
) -> Counter[str]:
    strategy = build_strategy(name)
    return Counter([(await strategy.choose(candidates, ctx)).id for _ in range(n)])


def five_sigma(n: int, p: float) -> float:
    return 5 * math.sqrt(n * p * (1 - p))


def assert_three_to_one(counts: Counter[str], heavy: str, light: str) -> None:
    assert counts[heavy] + counts[light] == DRAWS
    assert abs(counts[heavy] - 0.75 * DRAWS) <= five_sigma(DRAWS, 0.75)
    # ...and not a fair coin: uniform draws would land near DRAWS / 2.
    assert counts[heavy] > DRAWS / 2 + five_sigma(DRAWS, 0.5)


@pytest.mark.parametrize("name", STRATEGIES)
def test_build_strategy_knows_every_configurable_name(name: StrategyName) -> None:
    assert build_strategy(name).name == name


async def test_weighted_follows_weights() -> None:
    counts = await draw("weighted", [dep("a", weight=3), dep("b", weight=1)], context())
    assert_three_to_one(counts, "a", "b")


async def test_weighted_with_equal_weights_is_fair() -> None:
    counts = await draw("weighted", [dep("a"), dep("b")], context())
    assert abs(counts["a"] - DRAWS / 2) <= five_sigma(DRAWS, 0.5)


async def test_ties_are_broken_by_weight_and_the_worse_deployment_is_never_chosen() -> None:
    """For every strategy: a and b are equally good (weights 3:1), c is worse."""
    stats = DeploymentStats()
    usage = LocalUsageWindow(FakeClock())
    for dep_id in ("a", "b"):
        stats.finished(dep_id, 0.5, ok=True)
        await usage.add(dep_id, requests=1)
    stats.started("c")
    stats.finished("c", 5.0, ok=True)
    stats.started("c")
    await usage.add("c", requests=7)
    candidates = [
        dep("a", weight=3, rpm=10),
        dep("b", weight=1, rpm=10),
        dep("c", weight=50, model="pricey", rpm=10),
    ]
    for name in ("least-busy", "least-latency", "lowest-cost", "usage-based"):
        counts = await draw(name, candidates, context(stats=stats, usage=usage))
        assert counts["c"] == 0, name
        assert_three_to_one(counts, "a", "b")


async def test_least_busy_prefers_fewest_in_flight() -> None:
    stats = DeploymentStats()
    for dep_id, busy in (("a", 2), ("b", 1), ("c", 3)):
        for _ in range(busy):
            stats.started(dep_id)
    counts = await draw("least-busy", [dep("a"), dep("b"), dep("c")], context(stats=stats), 200)
    assert counts == {"b": 200}


async def test_least_latency_prefers_the_faster_deployment() -> None:
    stats = DeploymentStats()
    stats.finished("slow", 2.0, ok=True)
    stats.finished("fast", 0.4, ok=True)
    counts = await draw("least-latency", [dep("slow"), dep("fast")], context(stats=stats), 200)
    assert counts == {"fast": 200}


async def test_least_latency_explores_a_deployment_without_samples_one_request_at_a_time() -> None:
    stats = DeploymentStats()
    stats.finished("fast", 0.1, ok=True)
    stats.finished("new", 9.0, ok=False)  # a failure is not a sample
    candidates = [dep("fast"), dep("new")]
    strategy = build_strategy("least-latency")
    assert (await strategy.choose(candidates, context(stats=stats))).id == "new"
    stats.started("new")  # the exploring request is in flight: do not pile on
    assert (await strategy.choose(candidates, context(stats=stats))).id == "fast"
    stats.finished("new", 0.3, ok=True)
    assert (await strategy.choose(candidates, context(stats=stats))).id == "fast"


async def test_least_latency_cold_start_with_every_deployment_busy_goes_by_weight() -> None:
    stats = DeploymentStats()
    stats.started("a")
    stats.started("b")
    counts = await draw("least-latency", [dep("a", weight=3), dep("b")], context(stats=stats))
    assert_three_to_one(counts, "a", "b")


async def test_least_latency_ranks_streams_by_time_to_first_token() -> None:
    stats = DeploymentStats()
    stats.finished("quick-start", 3.0, ok=True, first_token_s=0.1)
    stats.finished("quick-finish", 1.0, ok=True, first_token_s=0.8)
    candidates = [dep("quick-start"), dep("quick-finish")]
    streams = await draw("least-latency", candidates, context(stats=stats, stream=True), 100)
    calls = await draw("least-latency", candidates, context(stats=stats), 100)
    assert (streams, calls) == ({"quick-start": 100}, {"quick-finish": 100})


async def test_least_latency_streams_fall_back_to_latency_before_any_ttft() -> None:
    stats = DeploymentStats()
    stats.finished("slow", 3.0, ok=True)
    stats.finished("fast", 1.0, ok=True)
    counts = await draw(
        "least-latency", [dep("slow"), dep("fast")], context(stats=stats, stream=True), 100
    )
    assert counts == {"fast": 100}


async def test_lowest_cost_picks_the_cheapest_known_price() -> None:
    candidates = [
        dep("unknown", model="no-such-model", weight=100),
        dep("partial", model="input-only", weight=100),  # no output price: unknown
        dep("pricey", model="pricey"),
        dep("cheap", model="cheap-2025-01-01"),  # a dated snapshot of "cheap"
    ]
    ctx = context(estimated_tokens=1000)
    assert await draw("lowest-cost", candidates, ctx, 200) == {"cheap": 200}
    assert await draw("lowest-cost", candidates[:3], ctx, 200) == {"pricey": 200}


async def test_lowest_cost_treats_unpriced_deployments_alike() -> None:
    candidates = [dep("a", model="no-such-model", weight=3), dep("b", model="input-only")]
    assert_three_to_one(await draw("lowest-cost", candidates, context()), "a", "b")


async def test_lowest_cost_compares_input_plus_output_price() -> None:
    # cheap: 0.10 + 0.40; cheap-too: 0.30 + 0.20. Equal, so it is a weighted tie.
    candidates = [dep("a", model="cheap", weight=3), dep("b", model="cheap-too")]
    assert_three_to_one(await draw("lowest-cost", candidates, context()), "a", "b")


async def test_usage_based_skips_deployments_at_capacity() -> None:
    usage = LocalUsageWindow(FakeClock())
    await usage.add("full", requests=2)
    await usage.add("room", requests=9)
    candidates = [dep("full", rpm=2, weight=100), dep("room", rpm=10)]
    counts = await draw("usage-based", candidates, context(usage=usage), 200)
    assert counts == {"room": 200}


async def test_usage_based_prefers_the_lowest_utilisation_of_rpm_or_tpm() -> None:
    usage = LocalUsageWindow(FakeClock())
    await usage.add("big", requests=50, tokens=100)  # after this request: 51% of rpm
    await usage.add("small", requests=1, tokens=2_000)  # 20% of rpm, but 25% of tpm
    candidates = [dep("big", rpm=100, tpm=100_000), dep("small", rpm=10, tpm=10_000)]
    ctx = context(usage=usage, estimated_tokens=500)
    assert await draw("usage-based", candidates, ctx, 200) == {"small": 200}
    await usage.add("small", tokens=4_000)  # now 65% of tpm
    assert await draw("usage-based", candidates, ctx, 200) == {"big": 200}


async def test_usage_based_counts_this_requests_tokens_against_tpm() -> None:
    usage = LocalUsageWindow(FakeClock())
    await usage.add("a", tokens=980)
    await usage.add("b", tokens=195)  # less used (98% against 99%), but 10 more do not fit
    candidates = [dep("a", tpm=1000), dep("b", tpm=200)]
    assert await draw("usage-based", candidates, context(usage=usage, estimated_tokens=10)) == {
        "a": DRAWS
    }
    with pytest.raises(CapacityExceededError):  # 150 tokens fit neither
        await build_strategy("usage-based").choose(
            candidates, context(usage=usage, estimated_tokens=150)
        )


async def test_usage_based_lets_an_oversized_request_through_an_idle_deployment() -> None:
    usage = LocalUsageWindow(FakeClock())
    strategy = build_strategy("usage-based")
    ctx = context(usage=usage, estimated_tokens=5_000)
    assert (await strategy.choose([dep("a", tpm=1000)], ctx)).id == "a"
    await usage.add("a", tokens=1)
    with pytest.raises(CapacityExceededError):
        await strategy.choose([dep("a", tpm=1000)], ctx)


async def test_usage_based_treats_deployments_without_capacity_as_unlimited() -> None:
    usage = LocalUsageWindow(FakeClock())
    await usage.add("limited", requests=1)
    await usage.add("unlimited", requests=1_000_000)
    candidates = [dep("limited", rpm=1000), dep("unlimited")]
    assert await draw("usage-based", candidates, context(usage=usage), 100) == {"unlimited": 100}


class ExplodingWindow:
    async def current(self, dep_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        raise AssertionError("the window must not be consulted")

    async def add(self, dep_id: str, *, requests: int = 0, tokens: int = 0) -> None:
        raise AssertionError("strategies record nothing")

    async def buckets(self, dep_ids: Sequence[str]) -> dict[str, list[Bucket]]:
        raise AssertionError("the window must not be consulted")


async def test_usage_based_without_any_capacity_is_weighted_and_costs_no_lookup() -> None:
    candidates = [dep("a", weight=3), dep("b")]
    counts = await draw("usage-based", candidates, context(usage=ExplodingWindow()))
    assert_three_to_one(counts, "a", "b")


async def test_usage_based_without_a_window_is_a_configuration_error() -> None:
    with pytest.raises(InternalError, match="usage window"):
        await build_strategy("usage-based").choose([dep("a", rpm=5), dep("b")], context())


class DownWindow(ExplodingWindow):
    async def current(self, dep_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        raise UsageUnavailableError("usage window: Redis failed: connection refused")


async def test_usage_based_fails_open_by_weight_when_the_window_is_down() -> None:
    candidates = [dep("a", weight=3, rpm=1), dep("b", rpm=1)]
    counts = await draw("usage-based", candidates, context(usage=DownWindow()))
    assert_three_to_one(counts, "a", "b")


async def test_usage_based_records_nothing() -> None:
    usage = LocalUsageWindow(FakeClock())
    await build_strategy("usage-based").choose(
        [dep("a", rpm=5, tpm=100)], context(usage=usage, estimated_tokens=10)
    )
    assert await usage.current(["a"]) == {"a": (0, 0)}


async def test_usage_based_when_all_are_full_is_429_with_an_honest_retry_after() -> None:
    clock = FakeClock(T0 + 0.5)
    usage = LocalUsageWindow(clock)
    await usage.add("a", requests=1)  # leaves the window at T0 + 60
    clock.now = T0 + 10.2
    await usage.add("b", requests=1)  # leaves at T0 + 70
    clock.now = T0 + 20.7
    await usage.add("b", requests=1)
    clock.now = T0 + 30.4
    candidates = [dep("a", rpm=1), dep("b", rpm=2)]
    strategy = build_strategy("usage-based")
    with pytest.raises(CapacityExceededError) as info:
        await strategy.choose(candidates, context(usage=usage))
    error = info.value
    assert isinstance(error, UpstreamRateLimitError)
    assert (error.status, error.type, error.code) == (429, "rate_limit_error", "capacity_exceeded")
    assert error.headers == {"Retry-After": "30"}  # ceil(29.6): a frees first
    assert "'g'" in error.message
    assert "retry after 30s" in error.message
    clock.now = T0 + 60
    assert (await strategy.choose(candidates, context(usage=usage))).id == "a"


async def test_retry_after_waits_for_enough_tokens_to_leave_and_is_at_least_one_second() -> None:
    clock = FakeClock(T0)
    usage = LocalUsageWindow(clock)
    await usage.add("a", tokens=600)  # leaves at T0 + 60
    clock.now = T0 + 20
    await usage.add("a", tokens=300)  # leaves at T0 + 80
    clock.now = T0 + 59.9
    strategy = build_strategy("usage-based")
    with pytest.raises(CapacityExceededError) as info:
        await strategy.choose([dep("a", tpm=1000)], context(usage=usage, estimated_tokens=800))
    assert info.value.headers == {"Retry-After": "21"}  # both must go: ceil(80 - 59.9)
    with pytest.raises(CapacityExceededError) as info:
        await strategy.choose([dep("a", tpm=1000)], context(usage=usage, estimated_tokens=200))
    assert info.value.headers == {"Retry-After": "1"}  # 0.1 s away, rounded up to 1
