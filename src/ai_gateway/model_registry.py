"""The model registry (the design's "Model Manager").

What the gateway knows about each upstream model: context window, output limit, prices
(USD per 1M tokens, exact ``Decimal``), capabilities and alternative ids. The defaults ship
in ``ai_gateway/data/models.yaml``; user configuration can add models or override fields
with :meth:`ModelRegistry.with_overrides`.

Nothing is loaded at import time: call :func:`load_default_registry` once (for example in
the application's lifespan) and pass the registry to whatever needs it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "CAPABILITIES",
    "ModelInfo",
    "ModelRegistry",
    "Provider",
    "load_default_registry",
    "parse_registry",
]

Provider = Literal["openai", "anthropic", "gemini", "local"]

CAPABILITIES: frozenset[str] = frozenset(
    {"tools", "vision", "json_mode", "json_schema", "streaming", "reasoning"}
)

_PRICE_FIELDS = ("input_price", "output_price", "cached_input_price", "cache_write_price")

# What may follow "<known id>-" for a request id to count as a snapshot of that model:
# 20250929, 2024-11-20, 0613, 001, latest. Anything else ("mini-2024-07-18",
# "audio-preview", "6") names a different model and must not inherit its prices.
_SNAPSHOT_SUFFIX = re.compile(r"\d{8}|\d{4}-\d{2}-\d{2}|\d{3,4}|latest")

# Gemini's REST API names models "models/<id>".
_RESOURCE_PREFIX = "models/"

# Upper bound on remembered fallback lookups, so that clients sending endless distinct
# model names cannot grow a registry's memory without limit.
_MEMO_LIMIT = 4096


class ModelInfo(BaseModel):
    """One upstream model. Prices are USD per 1M tokens; ``None`` means not published."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, pattern=r"^\S+$", strict=True)
    provider: Provider
    mode: Literal["chat", "embedding"]
    context_window: int = Field(gt=0, strict=True)
    max_output_tokens: int | None = Field(default=None, gt=0, strict=True)
    input_price: Decimal | None = Field(default=None, ge=0)
    output_price: Decimal | None = Field(default=None, ge=0)
    cached_input_price: Decimal | None = Field(default=None, ge=0)
    cache_write_price: Decimal | None = Field(default=None, ge=0)
    capabilities: frozenset[str] = frozenset()
    embedding_dimensions: int | None = Field(default=None, gt=0, strict=True)
    aliases: tuple[str, ...] = ()

    @field_validator(*_PRICE_FIELDS, mode="before")
    @classmethod
    def _no_float_prices(cls, value: object) -> object:
        # A float has already lost the exact decimal the author wrote; insist on text.
        if isinstance(value, float):
            raise ValueError(
                f"price {value!r} is a float; write it as a quoted decimal string, e.g. '{value}'"
            )
        if isinstance(value, bool):
            raise ValueError("price must be a decimal string or an integer, not a boolean")
        return value

    @field_validator("capabilities")
    @classmethod
    def _known_capabilities(cls, value: frozenset[str]) -> frozenset[str]:
        unknown = sorted(value - CAPABILITIES)
        if unknown:
            raise ValueError(f"unknown capabilities {unknown}; allowed: {sorted(CAPABILITIES)}")
        return value

    @field_validator("aliases")
    @classmethod
    def _clean_aliases(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for alias in value:
            if not alias or any(ch.isspace() for ch in alias):
                raise ValueError(f"alias {alias!r} must be non-empty and contain no spaces")
        if len(set(value)) != len(value):
            raise ValueError("aliases must not repeat")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ModelInfo:
        if self.id in self.aliases:
            raise ValueError(f"aliases: {self.id!r} is the model's own id")
        if self.mode == "embedding" and self.embedding_dimensions is None:
            raise ValueError("embedding_dimensions: required for embedding models")
        if self.mode == "chat" and self.embedding_dimensions is not None:
            raise ValueError("embedding_dimensions: only embedding models have dimensions")
        return self

    def supports(self, capability: str) -> bool:
        """Whether the model advertises ``capability`` (e.g. ``"tools"``, ``"vision"``)."""
        return capability in self.capabilities


class ModelRegistry:
    """An immutable, indexed set of :class:`ModelInfo`.

    Ids and aliases are unique per provider. Lookups are dict hits; the dated-snapshot
    fallback in :meth:`get` is memoised per instance.
    """

    __slots__ = ("_by_name", "_by_provider", "_memo", "_models")

    def __init__(self, models: Iterable[ModelInfo]) -> None:
        self._models: tuple[ModelInfo, ...] = tuple(models)
        self._by_name: dict[tuple[str, str], ModelInfo] = {}
        by_provider: dict[str, list[ModelInfo]] = {}
        for model in self._models:
            for name in (model.id, *model.aliases):
                key = (model.provider, name)
                other = self._by_name.get(key)
                if other is not None:
                    raise ValueError(
                        f"{model.provider} model name {name!r} is used by both "
                        f"{other.id!r} and {model.id!r}"
                    )
                self._by_name[key] = model
            by_provider.setdefault(model.provider, []).append(model)
        self._by_provider: dict[str, tuple[ModelInfo, ...]] = {
            provider: tuple(group) for provider, group in by_provider.items()
        }
        self._memo: dict[tuple[str, str], ModelInfo | None] = {}

    def __len__(self) -> int:
        return len(self._models)

    def __repr__(self) -> str:
        return f"ModelRegistry({len(self._models)} models)"

    def get(self, provider: str, model_id: str) -> ModelInfo | None:
        """Find a model by id or alias, else by the model a dated/versioned id belongs to.

        ``gpt-4o-2024-11-20`` resolves to ``gpt-4o``, ``claude-sonnet-4-5-20250929`` to
        ``claude-sonnet-4-5`` and ``models/gemini-2.5-flash`` or ``gemini-2.5-flash-001``
        to ``gemini-2.5-flash``. The longest known id followed by ``-`` and a snapshot
        suffix (a date, a 3-4 digit version or ``latest``) wins; a shorter id never
        captures a different model (``gpt-4o-mini-…`` is not ``gpt-4o``).
        """
        key = (provider, model_id)
        found = self._by_name.get(key)
        if found is not None:
            return found
        try:
            return self._memo[key]
        except KeyError:
            pass
        resolved = self._resolve(provider, model_id)
        if len(self._memo) >= _MEMO_LIMIT:
            self._memo.clear()
        self._memo[key] = resolved
        return resolved

    def _resolve(self, provider: str, model_id: str) -> ModelInfo | None:
        name = model_id.removeprefix(_RESOURCE_PREFIX)
        found = self._by_name.get((provider, name))
        if found is not None:
            return found
        # Walk the dashes right to left so the longest known prefix is tried first.
        cut = name.rfind("-")
        while cut > 0:
            base = self._by_name.get((provider, name[:cut]))
            if base is not None and _SNAPSHOT_SUFFIX.fullmatch(name[cut + 1 :]):
                return base
            cut = name.rfind("-", 0, cut)
        return None

    def all(self) -> tuple[ModelInfo, ...]:
        """Every model, in registry order."""
        return self._models

    def for_provider(self, provider: str) -> tuple[ModelInfo, ...]:
        """The models of one provider, in registry order (empty if unknown)."""
        return self._by_provider.get(provider, ())

    def with_overrides(self, entries: Iterable[Mapping[str, Any]]) -> ModelRegistry:
        """A new registry with user entries applied; this registry is left unchanged.

        An entry whose ``provider`` and ``id`` match an existing model overrides only the
        fields it gives (``null`` clears an optional field); any other entry adds a model
        and must be complete. Raises ``ValueError`` naming the entry and the field.
        """
        models = list(self._models)
        position: dict[tuple[str, str], int] = {
            (m.provider, m.id): index for index, m in enumerate(models)
        }
        for index, entry in enumerate(entries):
            label = f"model override #{index}"
            if not isinstance(entry, Mapping):
                raise ValueError(f"{label}: expected a mapping, got {type(entry).__name__}")
            provider, model_id = entry.get("provider"), entry.get("id")
            for field, value in (("provider", provider), ("id", model_id)):
                if not isinstance(value, str) or not value:
                    raise ValueError(f"{label}: {field}: required, a non-empty string")
            label = f"{label} ({provider}/{model_id})"
            existing = position.get((str(provider), str(model_id)))
            if existing is None:
                models.append(_validate(entry, label))
                position[(str(provider), str(model_id))] = len(models) - 1
            else:
                merged = {**models[existing].model_dump(), **entry}
                models[existing] = _validate(merged, label)
        try:
            return ModelRegistry(models)
        except ValueError as exc:
            raise ValueError(f"model overrides: {exc}") from None


def parse_registry(data: object, source: str) -> ModelRegistry:
    """Build a registry from parsed YAML/JSON data: a mapping with a ``models`` list.

    ``source`` names where the data came from and prefixes every error message.
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("models"), list):
        raise ValueError(f"{source}: expected a mapping with a 'models' list")
    extra = sorted(str(key) for key in data if key != "models")
    if extra:
        raise ValueError(f"{source}: unknown top-level keys {extra}; only 'models' is allowed")
    models: list[ModelInfo] = []
    for index, entry in enumerate(data["models"]):
        label = f"{source}: models[{index}]"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{label}: expected a mapping, got {type(entry).__name__}")
        if isinstance(entry.get("id"), str):
            label = f"{label} ({entry['id']})"
        models.append(_validate(entry, label))
    try:
        return ModelRegistry(models)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None


def load_default_registry() -> ModelRegistry:
    """Read and validate the packaged ``ai_gateway/data/models.yaml``.

    Reads the file on every call; build the registry once at startup and share it.
    """
    source = "ai_gateway/data/models.yaml"
    text = (resources.files("ai_gateway") / "data" / "models.yaml").read_text("utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{source}: invalid YAML: {exc}") from None
    return parse_registry(data, source)


def _validate(entry: Mapping[str, Any], label: str) -> ModelInfo:
    try:
        return ModelInfo.model_validate(dict(entry))
    except ValidationError as exc:
        raise ValueError(f"{label}: {_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)
