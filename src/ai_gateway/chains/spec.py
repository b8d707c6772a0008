"""What the chain routes accept: a chain's steps, the bodies of the admin routes and of a run.

A step is `{name, prompt: {id, version | label}, model?, output: "text" | {"json_schema": {...}},
variables: {name: value}}`: a value is a literal, or a string holding Jinja2 expressions over the
chain's input variables and the earlier steps' outputs (`steps.<name>`); see chains/definition.py.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ai_gateway.chains.config import MAX_STEPS_CAP
from ai_gateway.prompts.records import NAME

_NAME = f"^{NAME.pattern}$"
MAX_VERSION = 2**31 - 1  # the database's integer


def _object_schema() -> dict[str, Any]:
    return {"type": "object"}


class StepPrompt(BaseModel):
    """The template a step renders: a version, a label, or neither (the template's `production`
    label when it has one, else its newest version), as in a chat request's `prompt`."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=_NAME)
    version: int | None = Field(default=None, ge=1, le=MAX_VERSION)
    label: str | None = Field(default=None, pattern=_NAME)

    @model_validator(mode="after")
    def _one(self) -> StepPrompt:
        if self.version is not None and self.label is not None:
            raise ValueError("send 'version' or 'label', not both")
        return self


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


class ChainCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=_NAME)
    description: str | None = Field(default=None, max_length=2000)
    steps: list[StepSpec] = Field(min_length=1, max_length=MAX_STEPS_CAP)
    variables: dict[str, Any] = Field(default_factory=_object_schema)
    note: str | None = Field(default=None, max_length=2000)
    labels: list[str] = Field(default_factory=list, max_length=16)

    @model_validator(mode="after")
    def _labels(self) -> ChainCreate:
        _check_labels(self.labels)
        return self


class ChainVersionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: list[StepSpec] = Field(min_length=1, max_length=MAX_STEPS_CAP)
    variables: dict[str, Any] = Field(default_factory=_object_schema)
    note: str | None = Field(default=None, max_length=2000)
    labels: list[str] = Field(default_factory=list, max_length=16)

    @model_validator(mode="after")
    def _labels(self) -> ChainVersionCreate:
        _check_labels(self.labels)
        return self


class ChainRunRequest(BaseModel):
    """`timeout_s`: this run's time bound, at most the configured `chains.timeout_s`."""

    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(default=None, ge=1, le=MAX_VERSION)
    label: str | None = Field(default=None, pattern=_NAME)
    variables: dict[str, Any] = Field(default_factory=dict)
    stream: bool = False
    include_intermediate: bool = False
    timeout_s: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one(self) -> ChainRunRequest:
        if self.version is not None and self.label is not None:
            raise ValueError("send 'version' or 'label', not both")
        return self


def _check_labels(labels: list[str]) -> None:
    for label in labels:
        if not NAME.fullmatch(label):
            raise ValueError(f"label {label[:64]!r}: 1-64 characters of A-Z a-z 0-9 . _ -")


def stored(steps: list[StepSpec]) -> dict[str, Any]:
    """A version's definition as the store keeps it."""
    return {"steps": [step.model_dump(exclude_none=True) for step in steps]}
