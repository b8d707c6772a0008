"""The `router:` section of the config file: how requests are spread, retried and failed over."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

StrategyName = Literal["weighted", "least-busy", "least-latency", "lowest-cost", "usage-based"]
ContextStrategy = Literal["error", "truncate-oldest", "fallback"]
STRATEGIES: tuple[StrategyName, ...] = (
    "weighted",
    "least-busy",
    "least-latency",
    "lowest-cost",
    "usage-based",
)
CONTEXT_STRATEGIES: tuple[ContextStrategy, ...] = ("error", "truncate-oldest", "fallback")


class BreakerConfig(BaseModel):
    """Per deployment: `failures` failures within `window_s` open the circuit for `cooldown_s`;
    then one probe request is let through (half-open) and its outcome closes or reopens it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    failures: int = Field(default=3, ge=1)
    window_s: float = Field(default=60.0, gt=0)
    cooldown_s: float = Field(default=30.0, gt=0)


class HedgeConfig(BaseModel):
    """Send a second request to another deployment when the first has not answered in time.

    `after_s` is a fixed delay; `after: p95` waits for the first deployment's observed p95
    latency (falling back to `after_s` until enough samples exist)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    after_s: float = Field(default=1.0, gt=0)
    after: Literal["fixed", "p95"] = "fixed"


class RouterConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: StrategyName = "weighted"
    retries: int = Field(default=2, ge=0, le=10)
    timeout_s: float = Field(default=600.0, gt=0)  # the whole request, all attempts included
    backoff_base_s: float = Field(default=0.1, ge=0)
    backoff_max_s: float = Field(default=5.0, ge=0)
    fallbacks: dict[str, list[str]] = Field(default_factory=dict)
    context_window_fallbacks: dict[str, list[str]] = Field(default_factory=dict)
    content_policy_fallbacks: dict[str, list[str]] = Field(default_factory=dict)
    context_strategy: ContextStrategy = "error"
    reserve_output_tokens: int = Field(default=1024, ge=0)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    hedge: dict[str, HedgeConfig] = Field(default_factory=dict)  # model name -> hedging

    @model_validator(mode="after")
    def _no_self_fallback(self) -> RouterConfig:
        for kind in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
            for name, targets in getattr(self, kind).items():
                if name in targets:
                    raise ValueError(f"{kind}: {name!r} lists itself as its own fallback")
        return self
