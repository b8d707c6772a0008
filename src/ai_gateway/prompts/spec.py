"""What the admin API and the CLI accept: a template (a chat request's shape), the bodies of the
prompt routes, and the check that a template can be used."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ai_gateway.errors import InvalidRequestError
from ai_gateway.prompts.records import NAME
from ai_gateway.schemas.chat import ChatCompletionRequest
from ai_gateway.schemas.validation import parse_body

# Fields a template may not set: how the answer is delivered is the request's, and the
# gateway's own fields are about one request.
NOT_IN_TEMPLATE = frozenset(
    {"stream", "stream_options", "prompt", "models", "fanout", "cache", "context_strategy"}
)
_NAME = NAME.pattern
_OBJECT_SCHEMA: dict[str, Any] = {"type": "object"}
MAX_VERSION = 2**31 - 1  # the database's integer


class NewVersion(BaseModel):
    """What a new version (of a template or a chain) carries besides its document: its
    variables' JSON Schema, a note, and the labels to point at it."""

    model_config = ConfigDict(extra="forbid")

    variables: dict[str, Any] = Field(default_factory=lambda: dict(_OBJECT_SCHEMA))
    note: str | None = Field(default=None, max_length=2000)
    labels: list[str] = Field(default_factory=list, max_length=16)

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: list[str]) -> list[str]:
        for label in labels:
            if not NAME.fullmatch(label):
                raise ValueError(f"label {label[:64]!r}: 1-64 characters of A-Z a-z 0-9 . _ -")
        return labels


class VersionChoice(BaseModel):
    """A version, a label, or neither (the `production` label when there is one, else the
    newest version)."""

    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(default=None, ge=1, le=MAX_VERSION)
    label: str | None = Field(default=None, pattern=f"^{_NAME}$")

    @model_validator(mode="after")
    def _one(self) -> Self:
        if self.version is not None and self.label is not None:
            raise ValueError("send 'version' or 'label', not both")
        return self


class PromptCreate(NewVersion):
    id: str = Field(pattern=f"^{_NAME}$")
    description: str | None = Field(default=None, max_length=2000)
    template: dict[str, Any]


class VersionCreate(NewVersion):
    template: dict[str, Any]


class LabelMove(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=MAX_VERSION)


class RenderRequest(VersionChoice):
    variables: dict[str, Any] = Field(default_factory=dict)


def check_template(template: dict[str, Any]) -> dict[str, Any]:
    """The template, checked as a chat request (its strings unrendered): 400 naming the field.
    A template has messages (at least one) and may set any other chat request field except
    those of NOT_IN_TEMPLATE."""
    for name in sorted(template):
        if name in NOT_IN_TEMPLATE:
            raise InvalidRequestError(
                f"A template may not set {name!r}: the request that uses it does.",
                param=f"template.{name}",
            )
    messages = template.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError(
            "A template needs 'messages': a list of at least one message.",
            param="template.messages",
        )
    shape = {"model": "template", **template}
    try:
        parse_body(ChatCompletionRequest, shape)
    except InvalidRequestError as exc:
        param = f"template.{exc.param}" if exc.param else "template"
        raise InvalidRequestError(f"template: {exc.message}", param=param) from None
    return template
