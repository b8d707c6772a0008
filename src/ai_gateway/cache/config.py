"""The `cache:` section of the config file: response caching (exact and semantic) and provider
prompt caching. Everything is optional; docs/caching.md describes the behaviour.

Part of the config file's schema, so in the settings layer: it imports nothing of the code that
acts on it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

# Who may share an entry: everyone, a team (a user without a team: that user), a user, one key.
CacheScope = Literal["global", "team", "user", "key"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SemanticConfig(_Frozen):
    """The semantic cache's index and embedding model (used by the model names that turn it on).

    `embedding_model`: any embedding model name the gateway serves (the built-in local model by
    default). `threshold`: the least cosine similarity of a hit. Only requests without tools,
    tool results or images, with a non-empty last user message, and at most `max_messages`
    messages are looked up or stored. The index is Qdrant: embedded under
    `<data_dir>/qdrant` (or `qdrant_path`), or a server at `qdrant_url`."""

    embedding_model: str = "local/all-minilm-l6-v2"
    threshold: float = Field(default=0.95, gt=0, le=1)
    max_messages: int = Field(default=8, ge=1)
    qdrant_url: SecretStr | None = None
    qdrant_path: str | None = None
    collection: str = Field(default="ai_gateway_cache", pattern=r"^[A-Za-z0-9_-]{1,64}$")


class CacheRule(_Frozen):
    """What a model name or a virtual key changes; None: as the section says."""

    enabled: bool | None = None
    ttl_s: int | None = Field(default=None, ge=1)
    semantic: bool | None = None
    scope: CacheScope | None = None


class PromptCaching(_Frozen):
    """Anthropic prompt caching: mark the stable prefix of a request (its tools, then its system
    prompt) with `cache_control` when that prefix holds at least `min_tokens` tokens, unless the
    request marks breakpoints itself."""

    enabled: bool = True
    min_tokens: int = Field(default=1024, ge=1)


class CacheConfig(_Frozen):
    """Response caching. Off unless `enabled` (for every model name) or a model's rule turns it
    on. `redis_url`: share entries between instances (default: `gateway.redis_url`; without
    one, an in-process LRU of `max_bytes`). `coalesce`: concurrent identical misses share one
    upstream call; with Redis and `coalesce_lock_s` > 0, across instances too."""

    enabled: bool = False
    ttl_s: int = Field(default=3600, ge=1)
    scope: CacheScope = "team"
    redis_url: SecretStr | None = None
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_entry_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    coalesce: bool = True
    coalesce_lock_s: float = Field(default=0.0, ge=0, le=600)
    models: dict[str, CacheRule] = Field(default_factory=dict)
    keys: dict[str, CacheRule] = Field(default_factory=dict)
    semantic: SemanticConfig = Field(default_factory=SemanticConfig)
    prompt_caching: PromptCaching = Field(default_factory=PromptCaching)
