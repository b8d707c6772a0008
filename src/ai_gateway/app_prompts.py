"""Wiring the prompt templates (docs/prompts.md): their store (the analytics database), the
cached catalog, its invalidation across instances (Redis pub/sub when the gateway has Redis;
a single instance needs none), the pipeline stage and the admin API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from redis.asyncio import Redis

from ai_gateway.api.common import BodyLimit
from ai_gateway.api.prompts import PromptsAPI
from ai_gateway.observability.logging import get_logger
from ai_gateway.pipeline.prompt import Prompt
from ai_gateway.prompts.catalog import PromptCatalog
from ai_gateway.prompts.invalidation import RedisInvalidation
from ai_gateway.prompts.versioned import VersionedCatalog
from ai_gateway.settings import Config
from ai_gateway.stores.analytics import StoreUnavailableError
from ai_gateway.stores.factory import open_prompt_store
from ai_gateway.stores.prompts import PromptStore

log = get_logger(__name__)


C = TypeVar("C", bound=VersionedCatalog[Any])


@dataclass(frozen=True)
class CatalogService(Generic[C]):
    """A versioned catalog's store (templates, chains) and its invalidation across instances,
    started and closed with the app."""

    kind: str  # "prompt", "chain": its log events
    store: PromptStore
    catalog: C
    invalidation: RedisInvalidation | None

    async def start(self) -> None:
        try:
            await self.store.start()
        except StoreUnavailableError as exc:
            # Start anyway: the store connects on its next use; requests that need it get a
            # 503 until then, others are not affected.
            log.warning(f"{self.kind}_store_unavailable_at_start", error=str(exc)[:300])
        if self.invalidation is not None:
            await self.invalidation.start(self.catalog.forget)

    async def aclose(self) -> None:
        if self.invalidation is not None:
            await self.invalidation.aclose()
        await self.store.aclose()


def invalidation_for(
    config: Config, redis_client: Redis | None, channel: str
) -> RedisInvalidation | None:
    """Changes announced on `<redis_prefix>:<channel>` when the gateway has Redis; a single
    instance needs none."""
    if redis_client is None:
        return None
    return RedisInvalidation(redis_client, f"{config.gateway.redis_prefix}:{channel}")


@dataclass(frozen=True)
class Prompts(CatalogService[PromptCatalog]):
    stage: Prompt
    api: PromptsAPI


def build_prompts(config: Config, redis_client: Redis | None, body: BodyLimit) -> Prompts:
    store = open_prompt_store(config.gateway)
    invalidation = invalidation_for(config, redis_client, "prompts")
    catalog = PromptCatalog(
        store, notify=invalidation.publish if invalidation is not None else None
    )
    return Prompts(
        kind="prompt",
        store=store,
        catalog=catalog,
        invalidation=invalidation,
        stage=Prompt(catalog, config.security.request_limits),
        api=PromptsAPI(catalog, body),
    )
