from __future__ import annotations

from typing import Any

import pytest

from ai_gateway.routing.stats import DeploymentStats


def test_in_flight_counts_each_deployment_and_never_goes_negative() -> None:
    stats = DeploymentStats()
    stats.started("a")
    stats.started("a")
    stats.started("b")
    assert (stats.in_flight("a"), stats.in_flight("b"), stats.in_flight("c")) == (2, 1, 0)
    stats.finished("a", 0.5, ok=True)
    stats.finished("b", 0.5, ok=False)
    assert (stats.in_flight("a"), stats.in_flight("b")) == (1, 0)
    stats.finished("b", 0.5, ok=False)  # a finish without a start (e.g. after a reset)
    assert stats.in_flight("b") == 0


def test_latency_is_an_ewma_of_successes_only() -> None:
    stats = DeploymentStats(alpha=0.5)
    assert stats.latency("a") is None
    stats.finished("a", 2.0, ok=True)
    assert stats.latency("a") == 2.0  # the first sample is taken as is
    stats.finished("a", 1.0, ok=True)
    assert stats.latency("a") == pytest.approx(1.5)
    stats.finished("a", 30.0, ok=False)  # a failure says nothing about speed
    assert stats.latency("a") == pytest.approx(1.5)
    assert stats.samples("a") == 2


def test_default_alpha_weighs_the_newest_sample_at_0_3() -> None:
    stats = DeploymentStats()
    stats.finished("a", 1.0, ok=True)
    stats.finished("a", 2.0, ok=True)
    assert stats.latency("a") == pytest.approx(0.3 * 2.0 + 0.7 * 1.0)


def test_ttft_is_tracked_separately_for_streams() -> None:
    stats = DeploymentStats(alpha=0.5)
    stats.finished("a", 3.0, ok=True)  # not a stream
    assert stats.ttft("a") is None
    stats.finished("a", 3.0, ok=True, first_token_s=0.4)
    stats.finished("a", 3.0, ok=True, first_token_s=0.2)
    assert stats.ttft("a") == pytest.approx(0.3)
    assert stats.latency("a") == pytest.approx(3.0)
    stats.finished("a", 1.0, ok=False, first_token_s=5.0)
    assert stats.ttft("a") == pytest.approx(0.3)


def test_p95_needs_enough_samples_then_is_the_nearest_rank() -> None:
    stats = DeploymentStats()
    for ms in range(1, 20):
        stats.finished("a", ms / 100, ok=True)
    assert stats.p95("a") is None  # 19 < 20 samples
    assert stats.p95("a", minimum_samples=19) == pytest.approx(0.19)
    for ms in range(20, 101):
        stats.finished("a", ms / 100, ok=True)
    assert stats.p95("a") == pytest.approx(0.95)
    assert stats.p95("unknown") is None


def test_p95_covers_only_the_most_recent_window() -> None:
    stats = DeploymentStats(window=10)
    for _ in range(10):
        stats.finished("a", 9.0, ok=True)
    for _ in range(10):
        stats.finished("a", 1.0, ok=True)
    assert stats.p95("a", minimum_samples=10) == 1.0  # the slow ones have rolled out
    assert stats.samples("a") == 20


def test_nonsense_durations_are_ignored() -> None:
    stats = DeploymentStats()
    stats.started("a")
    stats.finished("a", float("nan"), ok=True)
    stats.finished("a", -1.0, ok=True)
    assert (stats.latency("a"), stats.samples("a"), stats.in_flight("a")) == (None, 0, 0)


def test_idle_deployments_are_forgotten_beyond_the_limit_but_busy_ones_are_kept() -> None:
    stats = DeploymentStats(max_deployments=2)
    stats.started("busy")
    stats.finished("idle", 1.0, ok=True)
    stats.finished("new", 2.0, ok=True)  # at the limit: the oldest idle entry goes
    assert stats.latency("idle") is None
    assert stats.in_flight("busy") == 1
    assert stats.latency("new") == 2.0


@pytest.mark.parametrize(
    "kwargs", [{"alpha": 0.0}, {"alpha": 1.5}, {"window": 0}, {"max_deployments": 0}]
)
def test_invalid_settings_are_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        DeploymentStats(**kwargs)
