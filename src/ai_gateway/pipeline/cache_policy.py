"""The response cache's policy for one request (pipeline/cache.py uses it): whether the cache
applies (config, per model name, per key), for how long, what the client's `Cache-Control` and
`cache` field allow, and the request's key (its tenant by the scope, its namespace, the template
version and the context it asks for)."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from ai_gateway.cache.config import CacheConfig, CacheRule
from ai_gateway.cache.key import DEFAULT_NAMESPACE, CacheKey, cache_key, canonical, scope_of
from ai_gateway.pipeline.exchange import Exchange
from ai_gateway.schemas.chat import Tool

_NO_RULE = CacheRule()


@dataclass(slots=True)
class Policy:
    """What the cache does for one request."""

    ttl_s: int
    lookup: bool  # False: `no-cache` (the answer is still stored)
    store: bool  # False: `no-store`
    max_age_s: float | None  # only entries younger than this (the client's max-age)
    semantic: bool
    key: CacheKey


def policy_of(config: CacheConfig, exchange: Exchange, *, semantic: bool) -> Policy | None:
    """None when the cache is off for this request; `semantic`: the semantic index is open."""
    principal = exchange.info.principal
    model_rule = config.models.get(exchange.model, _NO_RULE)
    key_id = principal.key_id if principal is not None else None
    key_rule = config.keys.get(key_id, _NO_RULE) if key_id else _NO_RULE
    enabled = key_rule.enabled
    if enabled is None:
        enabled = model_rule.enabled if model_rule.enabled is not None else config.enabled
    if not enabled:
        return None
    chat = exchange.chat
    options = chat.parsed.cache
    control = exchange.cache_control
    ttl = (options.ttl if options else None) or key_rule.ttl_s or model_rule.ttl_s
    scope = key_rule.scope or model_rule.scope or config.scope
    namespace = (options.namespace if options else None) or DEFAULT_NAMESPACE
    tenant = scope_of(principal, scope)
    extra = _context_of(exchange)
    native = exchange.native
    if native is not None:
        # A native request (the Messages API) is keyed on what the client sent (its view holds
        # less: thinking signatures, cache_control, top_k), and its answers hold the upstream's
        # own message or events: no other API shares its entries, nor the semantic index.
        extra += b"\nnative:" + native.provider.encode() + b":" + canonical(native.body)
        semantic = False
    return Policy(
        ttl_s=ttl or config.ttl_s,
        lookup=not (control.no_cache or (options is not None and options.no_cache)),
        store=not (control.no_store or (options is not None and options.no_store)),
        max_age_s=control.max_age_s,
        semantic=semantic
        and bool(key_rule.semantic if key_rule.semantic is not None else model_rule.semantic),
        key=cache_key(chat.body, tenant, namespace, exchange.prompt, extra),
    )


def _context_of(exchange: Exchange) -> bytes:
    """A request with `context` is answered from its user's memories, project and profile; one
    with `rag` (or a file_search tool) from the vector stores its caller may see: its key says
    which, and for whom (the context and retrieval stages run after the cache)."""
    parsed = exchange.chat.parsed
    options = parsed.context
    rag = parsed.rag
    if options is None and rag is None and not _searches_files(parsed.tools):
        return b""
    principal = exchange.info.principal
    user = principal.user if principal is not None else None
    whose: list[object] = [user, exchange.chat.body.get("user")]
    if rag is not None or parsed.tools:  # who may see which store: key, user and team
        whose += [principal.kind, principal.key_id, principal.team] if principal else [None]
    context = options.model_dump() if options is not None else None
    retrieval = rag.model_dump() if rag is not None else None
    return b"\ncontext:" + orjson.dumps([context, retrieval, *whose])


def _searches_files(tools: list[Tool] | None) -> bool:
    return bool(tools) and any(tool.type == "file_search" for tool in tools or ())
