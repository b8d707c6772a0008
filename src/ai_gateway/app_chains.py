"""Wiring the chains (docs/chains.md): their store (the prompt store's class on the chains'
tables, in the analytics database), the cached catalog, its invalidation across instances
(Redis pub/sub on `<redis_prefix>:chains` when the gateway has Redis) and the routes."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from ai_gateway.api.chains import ChainsAPI
from ai_gateway.api.common import BodyLimit
from ai_gateway.app_prompts import CatalogService, invalidation_for
from ai_gateway.chains.catalog import ChainCatalog
from ai_gateway.observability.metrics import Metrics
from ai_gateway.pipeline.chains import Chains
from ai_gateway.settings import Config
from ai_gateway.stores.factory import open_chain_store


@dataclass(frozen=True)
class ChainParts(CatalogService[ChainCatalog]):
    api: ChainsAPI


def build_chains(
    config: Config, redis_client: Redis | None, chains: Chains, body: BodyLimit, metrics: Metrics
) -> ChainParts:
    store = open_chain_store(config.gateway)
    invalidation = invalidation_for(config, redis_client, "chains")
    catalog = ChainCatalog(
        store,
        config.chains.max_steps,
        notify=invalidation.publish if invalidation is not None else None,
    )
    api = ChainsAPI(catalog, chains, config.security.request_limits, config.chains, body, metrics)
    return ChainParts(
        kind="chain", store=store, catalog=catalog, invalidation=invalidation, api=api
    )
