"""App assembly of the response cache (pipeline/cache.py): where entries are kept (Redis or
in process) and the semantic cache's index and embedding model (docs/caching.md)."""

from __future__ import annotations

from functools import partial

from redis.asyncio import Redis

from ai_gateway.cache.semantic import SemanticIndex
from ai_gateway.cache.semantic_query import SemanticLookup
from ai_gateway.cache.store import CacheStore, MemoryStore, RedisStore
from ai_gateway.pipeline.call import Call
from ai_gateway.settings import Config
from ai_gateway.stores.redis import create_redis


def cache_store(config: Config, redis_client: Redis | None) -> CacheStore:
    """Redis (cache.redis_url, else the gateway's redis_url) shared by every instance, else an
    in-process LRU."""
    prefix = config.gateway.redis_prefix
    url = config.cache.redis_url
    if url is not None:
        return RedisStore(create_redis(url.get_secret_value()), prefix)
    if redis_client is not None:
        return RedisStore(redis_client, prefix)
    return MemoryStore(config.cache.max_bytes)


def semantic_lookup(config: Config, call: Call) -> SemanticLookup | None:
    """The semantic cache, when a model name or a key turns it on: its index (embedded Qdrant
    under the data directory, or a server), queries embedded by `cache.semantic.embedding_model`
    through the gateway's own routing."""
    rules = (*config.cache.models.values(), *config.cache.keys.values())
    if not any(rule.semantic for rule in rules):
        return None
    semantic = config.cache.semantic
    index = SemanticIndex.open(semantic, config.gateway.data_dir)
    return SemanticLookup(index, partial(call.embed, semantic.embedding_model), semantic)
