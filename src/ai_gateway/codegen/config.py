"""The `codegen:` section of the config file: which model name and which label of the
`code-generate` template `POST /ai/code/generate` uses (docs/codegen.md). Part of the config
file's schema, so in the settings layer."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class CodegenConfig(BaseModel):
    """`model`: the model name a request without one uses, when it is configured (else the
    first model name of the config file); `template_label`: the label of the `code-generate`
    template that renders the prompt."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(default="code", min_length=1, max_length=256)
    template_label: str = Field(default="production", pattern=_NAME)
