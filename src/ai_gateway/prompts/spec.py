"""What the admin API and the CLI accept: a template (a chat request's shape), the bodies of the
prompt routes, and the check that a template can be used."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

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


class PromptCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=f"^{_NAME}$")
    description: str | None = Field(default=None, max_length=2000)
    template: dict[str, Any]
    variables: dict[str, Any] = Field(default_factory=lambda: dict(_OBJECT_SCHEMA))
    note: str | None = Field(default=None, max_length=2000)
    labels: list[str] = Field(default_factory=list, max_length=16)

    @model_validator(mode="after")
    def _labels(self) -> PromptCreate:
        _check_labels(self.labels)
        return self


class VersionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    template: dict[str, Any]
    variables: dict[str, Any] = Field(default_factory=lambda: dict(_OBJECT_SCHEMA))
    note: str | None = Field(default=None, max_length=2000)
    labels: list[str] = Field(default_factory=list, max_length=16)

    @model_validator(mode="after")
    def _labels(self) -> VersionCreate:
        _check_labels(self.labels)
        return self


class LabelMove(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=MAX_VERSION)


class RenderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(default=None, ge=1, le=MAX_VERSION)
    label: str | None = Field(default=None, pattern=f"^{_NAME}$")
    variables: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one(self) -> RenderRequest:
        if self.version is not None and self.label is not None:
            raise ValueError("send 'version' or 'label', not both")
        return self


def _check_labels(labels: list[str]) -> None:
    for label in labels:
        if not NAME.fullmatch(label):
            raise ValueError(f"label {label[:64]!r}: 1-64 characters of A-Z a-z 0-9 . _ -")


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
