"""Balancing strategies: which of a model group's deployments serves a request.

A strategy is a small object with a ``name`` and one method, ``choose(candidates, ctx)``.
The router hands it the candidates that are left after health filtering and after removing
deployments already tried for this request (never an empty sequence), plus a
:class:`ChoiceContext` with everything a strategy may look at. Strategies never record
anything; the router updates :class:`DeploymentStats` and the usage window.

Every strategy breaks ties by weight: among equally good deployments one is drawn at
random with probability proportional to its ``weight``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, TypeVar

from ai_gateway.errors import InternalError, UpstreamRateLimitError
from ai_gateway.model_registry import ModelRegistry
from ai_gateway.observability.logging import get_logger
from ai_gateway.routing.config import StrategyName
from ai_gateway.routing.deployments import Deployment
from ai_gateway.routing.stats import DeploymentStats
from ai_gateway.routing.usage import WINDOW_S, UsageUnavailableError, UsageWindow

__all__ = [
    "CapacityExceededError",
    "ChoiceContext",
    "LeastBusy",
    "LeastLatency",
    "LowestCost",
    "Strategy",
    "UsageBased",
    "Weighted",
    "build_strategy",
]

log = get_logger(__name__)

_K = TypeVar("_K", int, float, tuple[bool, Decimal])


@dataclass(slots=True)
class ChoiceContext:
    """What a strategy may look at."""

    stats: DeploymentStats
    registry: ModelRegistry
    usage: UsageWindow | None
    rng: random.Random
    stream: bool = False
    estimated_tokens: int = 0  # prompt + expected output, for tpm and cost


class Strategy(Protocol):
    name: StrategyName
    # True when the strategy must run even for a single candidate (it may refuse it).
    enforces_capacity: bool

    async def choose(self, candidates: Sequence[Deployment], ctx: ChoiceContext) -> Deployment:
        """Pick one of ``candidates`` (non-empty)."""
        ...


class CapacityExceededError(UpstreamRateLimitError):
    """Every candidate deployment is at its configured rpm/tpm capacity: 429, with
    ``Retry-After`` set to the seconds until the first of them has room again."""

    default_code = "capacity_exceeded"

    def __init__(self, model: str, retry_after_s: int) -> None:
        super().__init__(
            f"Every deployment of model '{model}' is at its configured capacity (requests or "
            f"tokens per minute); retry after {retry_after_s}s.",
            headers={"Retry-After": str(retry_after_s)},
        )
        self.retry_after_s = retry_after_s


def _weighted(candidates: Sequence[Deployment], rng: random.Random) -> Deployment:
    if len(candidates) == 1:
        return candidates[0]
    weights = [max(dep.weight, 0.0) for dep in candidates]
    if sum(weights) <= 0:
        return candidates[rng.randrange(len(candidates))]
    return rng.choices(candidates, weights=weights)[0]


def _lowest(
    candidates: Sequence[Deployment], key: Callable[[Deployment], _K], rng: random.Random
) -> Deployment:
    """The deployment with the lowest key; ties drawn by weight."""
    keyed = [(key(dep), dep) for dep in candidates]
    best = min(k for k, _ in keyed)
    return _weighted([dep for k, dep in keyed if k == best], rng)


class Weighted:
    """Random, in proportion to each deployment's ``weight``."""

    __slots__ = ()
    name: StrategyName = "weighted"
    enforces_capacity: bool = False

    async def choose(self, candidates: Sequence[Deployment], ctx: ChoiceContext) -> Deployment:
        return _weighted(candidates, ctx.rng)


class LeastBusy:
    """The deployment with the fewest requests in flight from this gateway process."""

    __slots__ = ()
    name: StrategyName = "least-busy"
    enforces_capacity: bool = False

    async def choose(self, candidates: Sequence[Deployment], ctx: ChoiceContext) -> Deployment:
        return _lowest(candidates, lambda dep: ctx.stats.in_flight(dep.id), ctx.rng)


class LeastLatency:
    """The deployment with the lowest moving-average latency.

    For streams the measure is time to first token, when at least one candidate has a TTFT
    sample; otherwise (and for every non-streaming request) whole-request latency.

    Exploration: a deployment with no sample of that measure yet is tried first, so that
    new or restarted deployments get measured. Only one exploring request at a time goes to
    it (it must have nothing in flight), so that a burst of traffic does not pile onto a
    deployment whose speed is unknown; until its first success it competes on the
    measured deployments' terms. When no candidate has a sample and every one is busy, the
    choice is by weight.

    A deployment's figure only changes when it serves requests: one that measured slow is
    not retried until the others measure slower.
    """

    __slots__ = ()
    name: StrategyName = "least-latency"
    enforces_capacity: bool = False

    async def choose(self, candidates: Sequence[Deployment], ctx: ChoiceContext) -> Deployment:
        stats = ctx.stats
        measure = stats.latency
        if ctx.stream and any(stats.ttft(dep.id) is not None for dep in candidates):
            measure = stats.ttft
        measured: list[tuple[float, Deployment]] = []
        unexplored: list[Deployment] = []
        for dep in candidates:
            value = measure(dep.id)
            if value is not None:
                measured.append((value, dep))
            elif stats.in_flight(dep.id) == 0:
                unexplored.append(dep)
        if unexplored:
            return _weighted(unexplored, ctx.rng)
        if not measured:
            return _weighted(candidates, ctx.rng)
        best = min(value for value, _ in measured)
        return _weighted([dep for value, dep in measured if value == best], ctx.rng)


def _price(registry: ModelRegistry, dep: Deployment) -> Decimal | None:
    info = registry.get(dep.provider, dep.model)
    if info is None or info.input_price is None or info.output_price is None:
        return None
    return info.input_price + info.output_price


class LowestCost:
    """The cheapest deployment by the model registry's prices.

    A request of ``estimated_tokens`` (prompt and expected output together, split unknown)
    is priced at input price + output price per token. The estimate scales every candidate
    alike, so the ranking is by that per-token sum, and holds when the estimate is 0. A
    deployment whose model has no published input or output price sorts after every priced
    one.
    """

    __slots__ = ()
    name: StrategyName = "lowest-cost"
    enforces_capacity: bool = False

    async def choose(self, candidates: Sequence[Deployment], ctx: ChoiceContext) -> Deployment:
        def key(dep: Deployment) -> tuple[bool, Decimal]:
            price = _price(ctx.registry, dep)
            return (price is None, Decimal(0) if price is None else price)

        return _lowest(candidates, key, ctx.rng)


def _fits(dep: Deployment, requests: int, tokens: int, estimated: int) -> bool:
    """Room for one more request of ``estimated`` tokens. A request larger than the whole
    ``tpm`` fits only an idle token window: it could never fit otherwise."""
    if dep.rpm is not None and requests + 1 > dep.rpm:
        return False
    return dep.tpm is None or tokens + min(estimated, dep.tpm) <= dep.tpm


def _utilisation(dep: Deployment, requests: int, tokens: int, estimated: int) -> float:
    """The larger of the rpm and tpm fractions in use once this request is counted."""
    rpm = (requests + 1) / dep.rpm if dep.rpm else 0.0
    tpm = (tokens + estimated) / dep.tpm if dep.tpm else 0.0
    return max(rpm, tpm)


class UsageBased:
    """Only deployments with room under their ``rpm`` and ``tpm`` capacity for this request
    (``estimated_tokens``); among them the lowest utilisation, the larger of the request
    and token fractions of capacity used over the last minute, this request included. A
    deployment without ``rpm``/``tpm`` is unlimited (utilisation 0).

    When every candidate is full: :class:`CapacityExceededError` (429) with ``Retry-After``
    the seconds until the first of them has room again (at least 1).

    Records nothing: the router calls ``usage.add`` for the chosen deployment. Between the
    read here and that add, concurrent requests can see the same usage, so capacity is a
    soft limit that a burst can overshoot slightly. When no candidate has a capacity the
    window is not consulted. When the window's store is unreachable, routing fails open
    (by weight) and a warning is logged.
    """

    __slots__ = ()
    name: StrategyName = "usage-based"
    enforces_capacity: bool = True

    async def choose(self, candidates: Sequence[Deployment], ctx: ChoiceContext) -> Deployment:
        limited = [dep for dep in candidates if dep.rpm is not None or dep.tpm is not None]
        if not limited:
            return _weighted(candidates, ctx.rng)
        if ctx.usage is None:
            raise InternalError(
                "The usage-based routing strategy is configured without a usage window."
            )
        try:
            usage = await ctx.usage.current([dep.id for dep in limited])
        except UsageUnavailableError as exc:
            log.warning("usage_window_unavailable", strategy=self.name, error=str(exc))
            return _weighted(candidates, ctx.rng)
        estimated = max(0, ctx.estimated_tokens)
        open_: list[tuple[float, Deployment]] = []
        for dep in candidates:
            requests, tokens = usage.get(dep.id, (0, 0))
            if _fits(dep, requests, tokens, estimated):
                open_.append((_utilisation(dep, requests, tokens, estimated), dep))
        if not open_:
            wait = await _seconds_until_room(ctx.usage, candidates, estimated)
            raise CapacityExceededError(candidates[0].group, wait)
        best = min(value for value, _ in open_)
        return _weighted([dep for value, dep in open_ if value == best], ctx.rng)


async def _seconds_until_room(
    usage: UsageWindow, full: Sequence[Deployment], estimated: int
) -> int:
    """Whole seconds (at least 1) until one of ``full`` has room, as old usage leaves the
    window; the window's length if that cannot be told."""
    try:
        windows = await usage.buckets([dep.id for dep in full])
    except UsageUnavailableError:
        return WINDOW_S
    soonest = float(WINDOW_S)
    for dep in full:
        buckets = windows.get(dep.id, [])
        requests = sum(bucket.requests for bucket in buckets)
        tokens = sum(bucket.tokens for bucket in buckets)
        wait = 0.0
        for bucket in buckets:
            if _fits(dep, requests, tokens, estimated):
                break
            requests, tokens, wait = (
                requests - bucket.requests,
                tokens - bucket.tokens,
                bucket.frees_in_s,
            )
        if _fits(dep, requests, tokens, estimated):
            soonest = min(soonest, wait)
    return max(1, math.ceil(soonest))


def build_strategy(name: StrategyName) -> Strategy:
    match name:
        case "weighted":
            return Weighted()
        case "least-busy":
            return LeastBusy()
        case "least-latency":
            return LeastLatency()
        case "lowest-cost":
            return LowestCost()
        case "usage-based":
            return UsageBased()
    raise ValueError(f"unknown routing strategy {name!r}")
