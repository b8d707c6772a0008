"""What the chain routes accept: a chain's steps, the bodies of the admin routes and of a run.

A step is `{name, prompt: {id, version | label}, model?, output: "text" | {"json_schema": {...}},
variables: {name: value}}`: a value is a literal, or a string holding Jinja2 expressions over the
chain's input variables and the earlier steps' outputs (`steps.<name>`); see chains/definition.py.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ai_gateway.chains.config import MAX_STEPS_CAP
from ai_gateway.prompts.records import NAME
from ai_gateway.prompts.spec import NewVersion, VersionChoice

_NAME = f"^{NAME.pattern}$"


class StepPrompt(VersionChoice):
    """The template a step renders: a version, a label, or neither (the template's `production`
    label when it has one, else its newest version), as in a chat request's `prompt`."""

    id: str = Field(pattern=_NAME)


class JsonOutput(BaseModel):
    """The step's answer is JSON that must match `json_schema` (Draft 2020-12)."""

    model_config = ConfigDict(extra="forbid")

    json_schema: dict[str, Any]


class StepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME)
    prompt: StepPrompt
    model: str | None = Field(default=None, min_length=1, max_length=256)
    output: Literal["text"] | JsonOutput = "text"
    variables: dict[str, Any] = Field(default_factory=dict)


class ChainCreate(NewVersion):
    id: str = Field(pattern=_NAME)
    description: str | None = Field(default=None, max_length=2000)
    steps: list[StepSpec] = Field(min_length=1, max_length=MAX_STEPS_CAP)


class ChainVersionCreate(NewVersion):
    steps: list[StepSpec] = Field(min_length=1, max_length=MAX_STEPS_CAP)


class ChainRunRequest(VersionChoice):
    """`timeout_s`: this run's time bound, at most the configured `chains.timeout_s`. At least
    a second: a bound no upstream call can meet would make the run's `504 chain_timeout` blame
    the upstream for the request's own choice (found by fuzzing with `timeout_s: 5e-324`)."""

    variables: dict[str, Any] = Field(default_factory=dict)
    stream: bool = False
    include_intermediate: bool = False
    timeout_s: float | None = Field(default=None, ge=1)


def stored(steps: list[StepSpec]) -> dict[str, Any]:
    """A version's definition as the store keeps it."""
    return {"steps": [step.model_dump(exclude_none=True) for step in steps]}
