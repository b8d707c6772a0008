"""The `chains:` section of the config file (docs/chains.md): the bounds of a chain. Part of the
config file's schema, so in the settings layer."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MAX_STEPS_CAP = 100  # the most any configuration may allow


class ChainsConfig(BaseModel):
    """`max_steps`: the most steps a chain may have (a longer one is refused when it is stored,
    and at run time if the bound was lowered since); `timeout_s`: the longest a run may take,
    all its steps together (a run request may ask for less, never more)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_steps: int = Field(default=10, ge=1, le=MAX_STEPS_CAP)
    timeout_s: float = Field(default=120.0, gt=0, le=3600)
