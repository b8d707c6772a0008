"""The `security:` section of the config file: JWTs, limits, budgets, request limits, content
rules and CORS. Everything here is optional; the defaults are what docs/security.md describes.

Part of the config file's schema, so in the settings layer: it imports only the other schema
modules (`jwt_config`, `guardrails_config`, `patterns`), never the code that acts on it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ai_gateway.security.guardrails_config import (
    DEFAULT_POLICY_NAME,
    GuardrailPolicy,
    default_policy,
)
from ai_gateway.security.jwt_config import JWTSettings

BudgetPeriod = Literal["day", "week", "month", "total"]
# Redis unreachable: answer from local limits ("fail_open") or refuse with 503 ("fail_closed").
FailureMode = Literal["fail_open", "fail_closed"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RequestLimits(BaseModel):
    """Limits on what one request may ask for; security/request_limits.py says why
    these defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_messages: int = Field(default=2048, ge=1)
    max_message_chars: int = Field(default=1_000_000, ge=1)
    max_total_chars: int | None = Field(default=None, ge=1)
    max_tokens_cap: int | None = Field(default=None, ge=1)
    max_json_depth: int = Field(default=64, ge=8)
    max_embedding_inputs: int = Field(default=2048, ge=1)


class LimitConfig(_Frozen):
    """Limits for one scope. `rps`: requests per second, admitting `burst` at once (default:
    half a second's worth, at least 1). `tpm`: tokens per minute (prompt + completion, charged
    when the answer ends). `max_concurrent`: requests in flight."""

    rps: float | None = Field(default=None, gt=0)
    burst: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    max_concurrent: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _burst_needs_rps(self) -> LimitConfig:
        if self.burst is not None and self.rps is None:
            raise ValueError("burst needs rps (it is the size of the rps limit's bucket)")
        return self

    @property
    def empty(self) -> bool:
        return self.rps is None and self.tpm is None and self.max_concurrent is None


def default_burst(rps: float) -> int:
    return max(1, int(rps / 2))


class RateLimitsConfig(_Frozen):
    """Per user (every authenticated user: the default 10 requests/s), per named user and team,
    per model (everyone's requests for it together). A virtual key's own limits apply on top."""

    user: LimitConfig = LimitConfig(rps=10, burst=5)
    users: dict[str, LimitConfig] = Field(default_factory=dict)  # replace `user` for these
    team: LimitConfig | None = None
    teams: dict[str, LimitConfig] = Field(default_factory=dict)
    models: dict[str, LimitConfig] = Field(default_factory=dict)
    # Redis unreachable: "fail_open" keeps serving with each instance's own limits (logged,
    # shown by /health/ready); "fail_closed" refuses limited requests with 503.
    redis_failure: FailureMode = "fail_open"


class BudgetConfig(_Frozen):
    usd: Decimal = Field(ge=0)
    period: BudgetPeriod


class BudgetsConfig(_Frozen):
    """Spend limits in USD per period; a virtual key's own budget applies on top."""

    user: BudgetConfig | None = None  # every user's default
    users: dict[str, BudgetConfig] = Field(default_factory=dict)
    team: BudgetConfig | None = None
    teams: dict[str, BudgetConfig] = Field(default_factory=dict)


class GuardrailsConfig(_Frozen):
    """Content rules: named policies, the ones every request gets (`default`), and the ones a
    model name adds (`models`). A virtual key adds its own (`ai-gateway keys create
    --guardrails`). The built-in policy `default-pii` can be named without being listed."""

    policies: tuple[GuardrailPolicy, ...] = ()
    default: tuple[str, ...] = ()
    models: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    @property
    def all_policies(self) -> dict[str, GuardrailPolicy]:
        """The listed policies by name, and `default-pii` unless a listed one replaces it."""
        return {DEFAULT_POLICY_NAME: default_policy(), **{p.name: p for p in self.policies}}

    @model_validator(mode="after")
    def _names_exist(self) -> GuardrailsConfig:
        listed = [p.name for p in self.policies]
        if len(set(listed)) != len(listed):
            raise ValueError("guardrails.policies: a policy name is listed twice")
        names = [*listed, DEFAULT_POLICY_NAME]
        for where, used in [("default", self.default), *self.models.items()]:
            for name in used:
                if name not in names:
                    raise ValueError(
                        f"guardrails.{where if where == 'default' else 'models.' + where}: "
                        f"{name!r} is not a policy listed under guardrails.policies"
                    )
        return self


class CORSConfig(_Frozen):
    """Nothing is allowed unless listed. `allow_origins: ["*"]` allows any origin, and so does
    `"null"` in effect; neither is allowed with credentials."""

    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ("GET", "POST", "DELETE", "OPTIONS")
    allow_headers: tuple[str, ...] = ("authorization", "content-type", "x-request-id")
    expose_headers: tuple[str, ...] = (
        "x-request-id",
        *("x-gateway-request-id", "x-gateway-cost-usd", "x-gateway-attempts", "x-gateway-model"),
        *("x-gateway-deployment", "x-gateway-provider", "x-gateway-upstream-model"),
        *("x-gateway-fallbacks", "x-gateway-hedged", "x-gateway-truncated-messages"),
        "x-gateway-fanout",
        "retry-after",
        *("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests"),
        *("x-ratelimit-reset-requests", "x-ratelimit-limit-tokens"),
        *("x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),
    )
    allow_credentials: bool = False
    max_age_s: int = Field(default=600, ge=0)

    @model_validator(mode="after")
    def _no_wildcard_credentials(self) -> CORSConfig:
        if self.allow_credentials and "*" in self.allow_origins:
            raise ValueError("cors: allow_credentials cannot be used with allow_origins '*'")
        if self.allow_credentials and any(
            origin.strip().lower() == "null" for origin in self.allow_origins
        ):
            # Any page can send `Origin: null` (sandboxed iframes, file: and data: URLs).
            raise ValueError(
                "cors: allow_credentials cannot be used with the origin 'null', which any page "
                "can send (sandboxed iframes, file: and data: URLs); list real origins"
            )
        return self


class SecurityConfig(_Frozen):
    jwt: JWTSettings | None = None
    key_cache_ttl_s: float = Field(default=5.0, ge=0)
    rate_limits: RateLimitsConfig = RateLimitsConfig()
    budgets: BudgetsConfig = BudgetsConfig()
    request_limits: RequestLimits = RequestLimits()
    guardrails: GuardrailsConfig = GuardrailsConfig()
    cors: CORSConfig = CORSConfig()
