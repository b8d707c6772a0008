"""Wiring the chains (docs/chains.md): their store (the prompt store's class on the chains'
tables, in the analytics database), the cached catalog, its invalidation across instances
(Redis pub/sub on `<redis_prefix>:chains` when the gateway has Redis) and the routes."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from ai_gateway.api.chains import ChainsAPI
from ai_gateway.api.common import BodyLimit
from ai_gateway.chains.catalog import ChainCatalog
from ai_gateway.observability.logging import get_logger
from ai_gateway.observability.metrics import Metrics
from ai_gateway.pipeline.chains import Chains
from ai_gateway.prompts.invalidation import RedisInvalidation
from ai_gateway.settings import Config
from ai_gateway.stores.analytics import StoreUnavailableError
from ai_gateway.stores.factory import open_chain_store
from ai_gateway.stores.prompts import PromptStore

log = get_logger(__name__)


@dataclass(frozen=True)
class ChainParts:
    store: PromptStore
    catalog: ChainCatalog
    invalidation: RedisInvalidation | None
    api: ChainsAPI

    async def start(self) -> None:
        try:
            await self.store.start()
        except StoreUnavailableError as exc:
            log.warning("chain_store_unavailable_at_start", error=str(exc)[:300])
        if self.invalidation is not None:
            await self.invalidation.start(self.catalog.forget)

    async def aclose(self) -> None:
        if self.invalidation is not None:
            await self.invalidation.aclose()
        await self.store.aclose()


def build_chains(
    config: Config, redis_client: Redis | None, chains: Chains, body: BodyLimit, metrics: Metrics
) -> ChainParts:
    store = open_chain_store(config.gateway)
    invalidation = (
        RedisInvalidation(redis_client, f"{config.gateway.redis_prefix}:chains")
        if redis_client is not None
        else None
    )
    catalog = ChainCatalog(
        store,
        config.chains.max_steps,
        notify=invalidation.publish if invalidation is not None else None,
    )
    api = ChainsAPI(catalog, chains, config.security.request_limits, config.chains, body, metrics)
    return ChainParts(store=store, catalog=catalog, invalidation=invalidation, api=api)
