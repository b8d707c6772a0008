"""Configuration: environment variables and an optional YAML file, validated at start-up.

Precedence, highest first: command-line flags, environment variables, the YAML file, defaults.
Nothing here is read at import time; `load_config()` is called by the CLI (or a test) and the
result is passed to `create_app()`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from ai_gateway.cache.config import CacheConfig
from ai_gateway.chains.config import ChainsConfig
from ai_gateway.codegen.config import CodegenConfig
from ai_gateway.hooks.config import HooksConfig
from ai_gateway.integrations.config import IntegrationsConfig
from ai_gateway.model_names import model_name_problem
from ai_gateway.notify.config import NotificationsConfig
from ai_gateway.rag.config import RagConfig
from ai_gateway.responses.config import ResponsesConfig
from ai_gateway.routing.config import ContextStrategy, RouterConfig, StrategyName
from ai_gateway.security.config import SecurityConfig
from ai_gateway.streaming.config import StreamingConfig, WebSocketConfig

ProviderName = Literal["openai", "anthropic", "gemini", "local"]
PROVIDERS: tuple[ProviderName, ...] = ("openai", "anthropic", "gemini", "local")
# Providers reached over HTTP with a key; "local" runs in the gateway's own process.
RemoteProvider = Literal["openai", "anthropic", "gemini"]
REMOTE_PROVIDERS: tuple[RemoteProvider, ...] = ("openai", "anthropic", "gemini")

DEFAULT_API_BASES: dict[ProviderName, str] = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
    "local": "local:",
}

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """A configuration problem, with a message naming the key and why."""


def _empty_is_none(value: Any) -> Any:
    return None if value == "" else value


def _check_url(value: str | None) -> str | None:
    if value is None:
        return None
    if not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value.rstrip("/")


class DeploymentConfig(BaseModel):
    """One concrete upstream: a provider, an upstream model id, where and with which key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: ProviderName
    model: str = Field(min_length=1)
    api_base: str | None = None
    api_key: SecretStr | None = None
    weight: float = Field(default=1.0, gt=0)
    timeout_s: float | None = Field(default=None, gt=0)
    rpm: int | None = Field(default=None, ge=1)  # capacity, for the usage-based strategy
    tpm: int | None = Field(default=None, ge=1)
    tags: tuple[str, ...] = ()

    _url = field_validator("api_base")(_check_url)
    _empty = field_validator("api_key", "api_base", mode="before")(_empty_is_none)


class ModelGroupConfig(BaseModel):
    """A public model name (what clients send as "model") and the deployments behind it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    deployments: tuple[DeploymentConfig, ...] = Field(min_length=1)
    # Per-name overrides of the router's defaults.
    strategy: StrategyName | None = None
    context_strategy: ContextStrategy | None = None

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        problem = model_name_problem(name)  # clients could not ask for any other name
        if problem is not None:
            raise ValueError(problem)
        return name

    @model_validator(mode="before")
    @classmethod
    def _flat_form(cls, data: Any) -> Any:
        # The short form puts one deployment's keys beside the name.
        if isinstance(data, dict) and "deployments" not in data:
            group_keys = ("name", "strategy", "context_strategy")
            deployment = {k: v for k, v in data.items() if k not in group_keys}
            return {**{k: data[k] for k in group_keys if k in data}, "deployments": [deployment]}
        return data


class ProviderConfig(BaseModel):
    """Credentials and base URL used for `provider/<model>` requests and as deployment defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: SecretStr | None = None
    api_base: str | None = None

    _url = field_validator("api_base")(_check_url)
    _empty = field_validator("api_key", "api_base", mode="before")(_empty_is_none)


class GatewaySettings(BaseModel):
    """The gateway's own settings: env `AI_GATEWAY_<NAME>` or the YAML file's `gateway:` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=3001, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    master_key: SecretStr | None = None
    insecure_no_auth: bool = False
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    request_timeout_s: float = Field(default=600.0, gt=0)
    stream_idle_timeout_s: float = Field(default=300.0, gt=0)
    max_upstream_connections: int = Field(default=1000, ge=1)
    # Slow and idle clients (ai_gateway/serving.py; the body timeout: read_json in api/common.py).
    header_timeout_s: float = Field(default=10.0, gt=0)
    body_timeout_s: float = Field(default=30.0, gt=0)
    keep_alive_timeout_s: int = Field(default=5, ge=1)
    max_connections: int = Field(default=1000, ge=1)
    # Graceful drain on SIGTERM (streaming/drain.py): how long requests in flight may finish.
    drain_timeout_s: float = Field(default=30.0, ge=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Shared state for several gateway instances (circuit breakers, usage windows). Unset: each
    # instance keeps its own, in memory.
    redis_url: SecretStr | None = None
    # Analytics: usage records and feedback. SQLite under `data_dir` unless `database_url` is set
    # (PostgreSQL; the conventional DATABASE_URL works too).
    database_url: SecretStr | None = None
    data_dir: str = "data"
    analytics_enabled: bool = True
    analytics_retention_days: int = Field(default=30, ge=0)  # 0: keep forever
    analytics_buffer: int = Field(default=100_000, ge=100)  # records held while the store is down
    # Each record the writer takes is appended to `<data_dir>/journal` until the store has it, so
    # a killed process does not lose it (usage/journal.py).
    analytics_journal: bool = True
    # The database's operation (docs/operations.md): each PostgreSQL store's pool size (unset:
    # the store's own default), PgBouncer in transaction pooling mode, and whether `serve`
    # applies the schema's migrations itself (false: `ai-gateway migrate` does, beforehand).
    database_pool_min_size: int | None = Field(default=None, ge=0, le=1000)
    database_pool_max_size: int | None = Field(default=None, ge=1, le=1000)
    database_pgbouncer: bool = False
    database_migrate_at_start: bool = True
    # Tracing: prompt and completion text are recorded in spans only when this is on.
    trace_content: bool = False
    # Namespace of the gateway's Redis keys: instances that should share state use the same one.
    redis_prefix: str = Field(default="ai-gateway", min_length=1, pattern=r"^[A-Za-z0-9:._-]+$")
    log_format: Literal["json", "console"] = "json"
    access_log: bool = True  # one structured line per request (event "request")
    # Demo mode (ai_gateway/demo.py): None turns it on when no provider and no config file is
    # set; true or false forces it.
    demo: bool | None = None

    @model_validator(mode="after")
    def _pool_sizes(self) -> GatewaySettings:
        low, high = self.database_pool_min_size, self.database_pool_max_size
        if low is not None and high is not None and low > high:
            raise ValueError(
                f"database_pool_min_size ({low}) is larger than database_pool_max_size ({high})"
            )
        return self

    @classmethod
    def from_sources(
        cls,
        file_values: Mapping[str, Any],
        env: Mapping[str, str],
        overrides: Mapping[str, Any],
    ) -> GatewaySettings:
        """Defaults < the YAML file < `AI_GATEWAY_<NAME>` variables < command-line overrides."""
        merged: dict[str, Any] = dict(file_values)
        if env.get("REDIS_URL"):  # the conventional name; AI_GATEWAY_REDIS_URL wins
            merged["redis_url"] = env["REDIS_URL"]
        if env.get("DATABASE_URL"):  # likewise for AI_GATEWAY_DATABASE_URL
            merged["database_url"] = env["DATABASE_URL"]
        for name in cls.model_fields:
            value = env.get(f"AI_GATEWAY_{name.upper()}")
            if value is not None and value != "":
                merged[name] = value
        merged.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(merged)


class _ProviderEnv(BaseSettings):
    """The official SDKs' conventional variable names."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")
    anthropic_api_key: SecretStr | None = Field(default=None, validation_alias="ANTHROPIC_API_KEY")
    anthropic_base_url: str | None = Field(default=None, validation_alias="ANTHROPIC_BASE_URL")
    gemini_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("GEMINI_API_KEY", "GOOGLE_API_KEY")
    )
    gemini_base_url: str | None = Field(default=None, validation_alias="GEMINI_BASE_URL")


class _FileConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gateway: dict[str, Any] = Field(default_factory=dict)
    providers: dict[RemoteProvider, ProviderConfig] = Field(default_factory=dict)
    models: list[ModelGroupConfig] = Field(default_factory=list)
    registry: list[dict[str, Any]] = Field(default_factory=list)
    router: RouterConfig = Field(default_factory=RouterConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    integrations: IntegrationsConfig = Field(default_factory=IntegrationsConfig)
    codegen: CodegenConfig = Field(default_factory=CodegenConfig)
    chains: ChainsConfig = Field(default_factory=ChainsConfig)
    rag: RagConfig = Field(default_factory=RagConfig)
    responses: ResponsesConfig = Field(default_factory=ResponsesConfig)
    websocket: WebSocketConfig = Field(default_factory=WebSocketConfig)
    streaming: StreamingConfig = Field(default_factory=StreamingConfig)
    hooks: HooksConfig = ()
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)

    @field_validator("models")
    @classmethod
    def _unique_names(cls, groups: list[ModelGroupConfig]) -> list[ModelGroupConfig]:
        seen: set[str] = set()
        for group in groups:
            if group.name in seen:
                raise ValueError(f"model name {group.name!r} is listed twice")
            seen.add(group.name)
        return groups

    @model_validator(mode="after")
    def _fallbacks_name_models(self) -> _FileConfig:
        names = {group.name for group in self.models}
        router = self.router
        for kind in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
            for name, targets in getattr(router, kind).items():
                for target in [name, *targets]:
                    if target not in names and "/" not in target:
                        raise ValueError(
                            f"router.{kind}: {target!r} is not a model name listed under models:"
                        )
        for name in router.hedge:
            if name not in names:
                raise ValueError(f"router.hedge: {name!r} is not a model name listed under models:")
        return self


@dataclass(frozen=True)
class Config:
    """Everything `create_app()` needs, validated."""

    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    providers: Mapping[ProviderName, ProviderConfig] = field(default_factory=dict)
    models: tuple[ModelGroupConfig, ...] = ()
    # Model registry additions and overrides (context windows, prices, capabilities).
    registry: tuple[Mapping[str, Any], ...] = ()
    router: RouterConfig = field(default_factory=RouterConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    integrations: IntegrationsConfig = field(default_factory=IntegrationsConfig)
    codegen: CodegenConfig = field(default_factory=CodegenConfig)
    chains: ChainsConfig = field(default_factory=ChainsConfig)
    rag: RagConfig = field(default_factory=RagConfig)
    responses: ResponsesConfig = field(default_factory=ResponsesConfig)
    websocket: WebSocketConfig = field(default_factory=WebSocketConfig)
    streaming: StreamingConfig = field(default_factory=StreamingConfig)
    hooks: HooksConfig = ()
    notifications: NotificationsConfig = field(default_factory=NotificationsConfig)
    source: str = "environment"
    # Demo mode (ai_gateway/demo.py): where the built-in emulator that serves the demo model
    # names listens; None when demo mode is off.
    demo_upstream: str | None = None


def _rag_from_env(rag: RagConfig, env: Mapping[str, str]) -> RagConfig:
    """QDRANT_URL and QDRANT_API_KEY, the conventional names, and AI_GATEWAY_RAG_FILES_DIR (the
    folder instances share, as scripts/cluster sets it), when the file sets none of them."""
    changes: dict[str, SecretStr | str] = {}
    if rag.qdrant_url is None and env.get("QDRANT_URL"):
        changes["qdrant_url"] = SecretStr(env["QDRANT_URL"])
    if rag.qdrant_api_key is None and env.get("QDRANT_API_KEY"):
        changes["qdrant_api_key"] = SecretStr(env["QDRANT_API_KEY"])
    if rag.files_dir is None and env.get("AI_GATEWAY_RAG_FILES_DIR"):
        changes["files_dir"] = env["AI_GATEWAY_RAG_FILES_DIR"]
    return rag.model_copy(update=changes) if changes else rag


def _interpolate(value: Any, env: Mapping[str, str], path: str) -> Any:
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            value = env.get(name)
            if default is not None:  # like the shell: the default also replaces an empty value
                return value or default
            if value is not None:
                return value
            raise ConfigError(
                f"{path}: references ${{{name}}}, which is not set in the environment"
            )

        return _ENV_REF.sub(replace, value)
    if isinstance(value, dict):
        return {
            k: _interpolate(v, env, f"{path}.{k}" if path else str(k)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_interpolate(v, env, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def _describe(exc: ValidationError, prefix: str = "", flat: frozenset[int] = frozenset()) -> str:
    lines: list[str] = []
    errors = exc.errors(include_url=False)
    for err in errors:
        loc = list(err["loc"])
        # "too short" on a list whose items failed is noise: the item errors say what is wrong.
        if err["type"] == "too_short" and any(
            len(other["loc"]) > len(loc) and list(other["loc"][: len(loc)]) == loc
            for other in errors
        ):
            continue
        # A short-form entry has no deployments list in the file: report its keys directly.
        if loc[:1] == ["models"] and len(loc) >= 4 and loc[1] in flat and loc[2] == "deployments":
            loc = loc[:2] + loc[4:]
        parts: list[str] = []
        for item in loc:
            if isinstance(item, int):
                parts.append(f"[{item}]")
            else:
                parts.append(f".{item}" if parts else str(item))
        where = prefix + "".join(parts)
        msg = err["msg"].removeprefix("Value error, ")
        line = f"{where}: {msg}" if where else msg
        if line not in lines:
            lines.append(line)
    return "; ".join(lines)


def _read_file(path: Path, env: Mapping[str, str]) -> _FileConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping (models:, providers:, gateway:)"
        )
    try:
        data = _interpolate(raw, env, "")
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    try:
        return _FileConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_describe(exc, flat=_flat_entries(data))}") from exc


def _flat_entries(data: Any) -> frozenset[int]:
    """Indexes of `models:` entries written in the short form (no `deployments:` list)."""
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, list):
        return frozenset()
    return frozenset(
        i for i, m in enumerate(models) if isinstance(m, dict) and "deployments" not in m
    )


def _merge_providers(
    file_providers: Mapping[RemoteProvider, ProviderConfig], env: _ProviderEnv
) -> dict[ProviderName, ProviderConfig]:
    env_values: dict[RemoteProvider, tuple[SecretStr | None, str | None]] = {
        "openai": (env.openai_api_key, env.openai_base_url),
        "anthropic": (env.anthropic_api_key, env.anthropic_base_url),
        "gemini": (env.gemini_api_key, env.gemini_base_url),
    }
    merged: dict[ProviderName, ProviderConfig] = {}
    for name in REMOTE_PROVIDERS:
        base = file_providers.get(name, ProviderConfig())
        key, url = env_values[name]
        try:
            merged[name] = ProviderConfig(
                api_key=key if key is not None and key.get_secret_value() else base.api_key,
                api_base=url or base.api_base,
            )
        except ValidationError as exc:
            raise ConfigError(f"{name.upper()}_BASE_URL: {_describe(exc)}") from exc
    return merged


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Read the YAML file (if any) and the environment; raise ConfigError naming what is wrong.

    `overrides` are command-line values for `GatewaySettings` fields; they beat everything.
    """
    env = os.environ
    if path is None and env.get("AI_GATEWAY_CONFIG"):
        path = env["AI_GATEWAY_CONFIG"]
    file_config = _read_file(Path(path), env) if path else _FileConfig()
    try:
        gateway = GatewaySettings.from_sources(file_config.gateway, env, overrides or {})
    except ValidationError as exc:
        where = f"{path}: " if path else ""
        raise ConfigError(
            f"{where}{_describe(exc, 'gateway.')} (from the file's gateway: section, "
            "AI_GATEWAY_* variables or command-line flags)"
        ) from exc
    try:
        provider_env = _ProviderEnv()
    except ValidationError as exc:
        raise ConfigError(f"provider environment: {_describe(exc)}") from exc
    providers = _merge_providers(file_config.providers, provider_env)
    return Config(
        gateway=gateway,
        providers=providers,
        models=tuple(file_config.models),
        registry=tuple(file_config.registry),
        router=file_config.router,
        security=file_config.security,
        cache=file_config.cache,
        integrations=file_config.integrations,
        codegen=file_config.codegen,
        chains=file_config.chains,
        rag=_rag_from_env(file_config.rag, env),
        responses=file_config.responses,
        websocket=file_config.websocket,
        streaming=file_config.streaming,
        hooks=file_config.hooks,
        notifications=file_config.notifications,
        source=str(path) if path else "environment",
    )
