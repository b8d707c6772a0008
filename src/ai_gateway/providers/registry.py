"""One adapter instance (and so one HTTP pool) per provider."""

from __future__ import annotations

from collections.abc import Iterable

from ai_gateway.cache.config import PromptCaching
from ai_gateway.errors import InternalError
from ai_gateway.model_registry import ModelRegistry
from ai_gateway.observability.tracing import Tracing
from ai_gateway.providers.base import Provider
from ai_gateway.providers.egress import EgressProxies
from ai_gateway.providers.http import UpstreamHTTP
from ai_gateway.providers.local import LocalEmbeddingProvider
from ai_gateway.providers.openai import OpenAIProvider
from ai_gateway.settings import GatewaySettings
from ai_gateway.usage.tokens import TokenCounter


class ProviderRegistry:
    def __init__(self, providers: Iterable[Provider]) -> None:
        self._providers = {p.name: p for p in providers}

    @classmethod
    def from_settings(
        cls,
        settings: GatewaySettings,
        models: ModelRegistry,
        counter: TokenCounter,
        tracing: Tracing | None = None,
        prompt_caching: PromptCaching | None = None,
        egress: EgressProxies | None = None,
    ) -> ProviderRegistry:
        """The adapters; `prompt_caching` is the Anthropic adapter's (None: off); `egress`
        the forward proxies of their HTTP clients (None: direct)."""

        def http() -> UpstreamHTTP:
            return UpstreamHTTP(
                connect_timeout_s=settings.connect_timeout_s,
                request_timeout_s=settings.request_timeout_s,
                stream_idle_timeout_s=settings.stream_idle_timeout_s,
                max_connections=settings.max_upstream_connections,
                tracing=tracing,
                egress=egress,
            )

        adapters: list[Provider] = [OpenAIProvider(http()), LocalEmbeddingProvider()]
        from ai_gateway.providers.anthropic import AnthropicProvider

        adapters.append(AnthropicProvider(http(), models, prompt_caching))
        from ai_gateway.providers.gemini import GeminiProvider

        adapters.append(GeminiProvider(http(), models, counter))
        return cls(adapters)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._providers)

    def get(self, name: str) -> Provider:
        try:
            return self._providers[name]
        except KeyError:
            raise InternalError(f"No adapter is installed for provider '{name}'.") from None

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
