"""The deployments table: public model names to concrete upstream deployments."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from ai_gateway.errors import ModelNotFoundError
from ai_gateway.settings import (
    DEFAULT_API_BASES,
    PROVIDERS,
    Config,
    ConfigError,
    ModelGroupConfig,
    ProviderConfig,
    ProviderName,
)


def _custom_openai_base(base: str | None) -> bool:
    return base is not None and base != DEFAULT_API_BASES["openai"]


@dataclass(frozen=True, slots=True)
class Deployment:
    """One upstream target. `api_key` is a secret: never logged, never in repr."""

    id: str
    group: str
    provider: ProviderName
    model: str
    api_base: str
    api_key: str | None = field(default=None, repr=False)
    weight: float = 1.0
    timeout_s: float | None = None
    rpm: int | None = None  # capacity: requests per minute (usage-based strategy)
    tpm: int | None = None  # capacity: tokens per minute
    tags: tuple[str, ...] = ()
    # True when an operator named this deployment in the config; False for `provider/<model>`
    # requests, where the client chose the upstream model itself.
    from_config: bool = True


class DeploymentTable:
    """Resolves the `model` a client sends to the deployments that may serve it."""

    def __init__(
        self,
        groups: Mapping[str, tuple[Deployment, ...]],
        providers: Mapping[ProviderName, ProviderConfig],
        available: Collection[str] = PROVIDERS,
        group_configs: Sequence[ModelGroupConfig] = (),
    ) -> None:
        self._groups = dict(groups)
        self.group_configs = tuple(group_configs)
        # Reachable as `provider/<model>`: a key is configured, or (OpenAI-compatible servers
        # such as Ollama or vLLM) an OpenAI base URL other than OpenAI's own.
        self._direct: dict[ProviderName, ProviderConfig] = {
            name: cfg
            for name, cfg in providers.items()
            if name in available
            and (
                cfg.api_key is not None or (name == "openai" and _custom_openai_base(cfg.api_base))
            )
        }
        if "local" in available:  # built-in models need no key
            self._direct["local"] = ProviderConfig()
        self._direct_cache: dict[str, tuple[Deployment, ...]] = {}

    @classmethod
    def from_config(cls, config: Config, available: Collection[str] = PROVIDERS) -> DeploymentTable:
        """Build the table; `available` names the providers that have an adapter."""
        groups: dict[str, tuple[Deployment, ...]] = {}
        for index, group in enumerate(config.models):
            deployments = []
            for position, dep in enumerate(group.deployments):
                if dep.provider not in available:
                    raise ConfigError(
                        f"models[{index}] ({group.name!r}).deployments[{position}]: provider "
                        f"{dep.provider!r} is not supported by this version of the gateway"
                    )
                defaults = config.providers.get(dep.provider, ProviderConfig())
                key = dep.api_key or defaults.api_key
                base = dep.api_base or defaults.api_base or DEFAULT_API_BASES[dep.provider]
                keyless = dep.provider == "local" or (
                    dep.provider == "openai" and _custom_openai_base(base)
                )
                if key is None and not keyless:
                    env = "GEMINI_API_KEY" if dep.provider == "gemini" else "_API_KEY"
                    env = env if dep.provider == "gemini" else f"{dep.provider.upper()}{env}"
                    raise ConfigError(
                        f"models[{index}] ({group.name!r}).deployments[{position}]: no API key "
                        f"for provider {dep.provider!r}: set api_key or {env}"
                    )
                deployments.append(
                    Deployment(
                        id=f"{group.name}/{position}",
                        group=group.name,
                        provider=dep.provider,
                        model=dep.model,
                        api_base=base,
                        api_key=key.get_secret_value() if key is not None else None,
                        weight=dep.weight,
                        timeout_s=dep.timeout_s,
                        rpm=dep.rpm,
                        tpm=dep.tpm,
                        tags=dep.tags,
                    )
                )
            groups[group.name] = tuple(deployments)
        return cls(groups, config.providers, available, config.models)

    @property
    def groups(self) -> Mapping[str, tuple[Deployment, ...]]:
        return self._groups

    @property
    def direct_providers(self) -> tuple[ProviderName, ...]:
        """Providers reachable as `provider/<model>` (their key is configured)."""
        return tuple(name for name in PROVIDERS if name in self._direct)

    def resolve(self, name: str) -> tuple[Deployment, ...]:
        found = self._groups.get(name)
        if found is not None:
            return found
        cached = self._direct_cache.get(name)
        if cached is not None:
            return cached
        provider, sep, upstream = name.partition("/")
        if sep and upstream and provider in PROVIDERS:
            cfg = self._direct.get(provider)
            if cfg is None:
                raise ModelNotFoundError(
                    f"The model '{name}' cannot be served: provider '{provider}' has no API key "
                    "configured on this gateway. List the available models with GET /v1/models.",
                    param="model",
                )
            dep = Deployment(
                id=name,
                group=name,
                provider=provider,
                model=upstream,
                api_base=cfg.api_base or DEFAULT_API_BASES[provider],
                api_key=cfg.api_key.get_secret_value() if cfg.api_key else None,
                from_config=False,
            )
            if len(self._direct_cache) < 10_000:
                self._direct_cache[name] = (dep,)
            return (dep,)
        raise ModelNotFoundError(
            f"The model '{name}' does not exist on this gateway. "
            "List the available models with GET /v1/models.",
            param="model",
        )
