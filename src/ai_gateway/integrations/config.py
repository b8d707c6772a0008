"""The `integrations:` section of the config file: where the DevMentor Memory, Project and
Learning services are, how long the gateway waits for them, and when it stops asking.
docs/integrations.md describes the behaviour.

Part of the config file's schema, so in the settings layer: it imports nothing of the code that
acts on it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value.rstrip("/")


class ServiceConfig(_Frozen):
    """One service: its base URL, and the most one call to it may take (connecting included).
    A call is also cut off by the overall budget (`IntegrationsConfig.budget_s`)."""

    enabled: bool = True
    url: str
    timeout_s: float = Field(default=0.25, gt=0, le=60)

    _url = field_validator("url")(_check_url)


class SourceBreakerConfig(_Frozen):
    """`failures` consecutive failures of one service open its circuit for `cooldown_s`: the
    service is skipped at once (`circuit_open`). Then one request, the probe, is let through;
    its success closes the circuit, its failure opens it again."""

    failures: int = Field(default=5, ge=1)
    cooldown_s: float = Field(default=30.0, gt=0)


class BlockBudgets(_Frozen):
    """The context builder's token budgets: the most each block may take (its items are cut to
    fit, docs/integrations.md says how), and `window_share`, the most all the blocks together may
    take of the model's context window (the blocks before are served first)."""

    learning: int = Field(default=300, ge=0)
    memory: int = Field(default=1000, ge=0)
    project: int = Field(default=2000, ge=0)
    window_share: float = Field(default=0.5, gt=0, le=1)


class IntegrationsConfig(_Frozen):
    """The DevMentor services the gateway builds prompt context from.

    Off unless `enabled`. `budget_s`: the most the gateway waits for all the sources of one
    request together (they are asked in parallel). `store_timeout_s`: the most storing a
    finished exchange in the Memory service may take (off the client's path). `token`: sent as
    `Authorization: Bearer <token>` to every service when set. `memory_limit` and
    `snippet_limit`: how many memories and project snippets to ask for. `blocks`: what the
    context builder may put in the prompt."""

    enabled: bool = False
    budget_s: float = Field(default=0.3, gt=0, le=60)
    memory: ServiceConfig = ServiceConfig(url="http://127.0.0.1:3003")
    project: ServiceConfig = ServiceConfig(url="http://127.0.0.1:3004")
    learning: ServiceConfig = ServiceConfig(url="http://127.0.0.1:3005")
    token: SecretStr | None = None
    breaker: SourceBreakerConfig = SourceBreakerConfig()
    connect_timeout_s: float = Field(default=0.1, gt=0, le=60)
    store_timeout_s: float = Field(default=2.0, gt=0, le=600)
    max_connections: int = Field(default=100, ge=1)
    memory_limit: int = Field(default=5, ge=1, le=100)
    snippet_limit: int = Field(default=5, ge=1, le=100)
    blocks: BlockBudgets = BlockBudgets()

    @field_validator("token", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value
