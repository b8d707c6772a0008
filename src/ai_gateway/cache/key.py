"""Cache keys: what makes two requests the same request, and who may share an answer.

The key of a chat request is a SHA-256 of the canonical JSON (sorted keys, no whitespace) of
everything in the request that can change the answer: the model name, the messages, tools,
tool_choice, response_format, the sampling parameters, seed, max tokens, stop, n, logprobs,
the reasoning options and any other field the client sent, except those that cannot:
`user`, `metadata`, `stream`, `stream_options` (and the gateway's own `cache` field). An
unknown field is part of the key: a field that might change the answer must not share one.

It is computed within a partition: the tenant scope and the client's namespace, so that two
callers of different scopes never share an entry, exact or semantic. A request rendered from a
prompt template is keyed on the rendered request and on the template version (`<id>@<version>`):
a new version never answers from an older one's entries.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import orjson

from ai_gateway.cache.config import CacheScope
from ai_gateway.security.principal import Principal

# Fields that do not change the answer (the gateway's own fields are removed before this).
IGNORED_FIELDS = frozenset({"user", "metadata", "stream", "stream_options", "cache"})
NAMESPACE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
DEFAULT_NAMESPACE = "default"


@dataclass(slots=True)
class CacheKey:
    """`digest`: the entry's opaque id (hex), shown as `x-gateway-cache-key`. `partition`: who
    may share it (scope and namespace). `namespace`: the client's, for `DELETE /admin/cache`."""

    digest: str
    partition: str
    namespace: str


def scope_of(principal: Principal | None, scope: CacheScope) -> str:
    """The tenant an entry belongs to. Without authentication there is one tenant. The master
    key is a tenant of its own. A user without a team shares only with itself (`team` scope);
    a JWT caller without a key falls back from `key` to its user."""
    if principal is None:
        return "anonymous"
    if principal.admin:
        return "master"
    if scope == "global":
        return "global"
    if scope == "team" and principal.team:
        return f"team:{principal.team}"
    if scope == "key" and principal.key_id:
        return f"key:{principal.key_id}"
    if principal.user:
        return f"user:{principal.user}"
    return f"key:{principal.key_id}" if principal.key_id else f"caller:{principal.kind}"


def canonical(body: dict[str, Any]) -> bytes:
    """The request as it is keyed: its answer-changing fields, as canonical JSON."""
    kept = {k: v for k, v in body.items() if k not in IGNORED_FIELDS}
    return orjson.dumps(kept, option=orjson.OPT_SORT_KEYS)


def cache_key(
    body: dict[str, Any],
    tenant: str,
    namespace: str,
    prompt: str | None = None,
    extra: bytes = b"",
) -> CacheKey:
    """`prompt`: the template and version the request was rendered from; `extra`: what else
    the answer depends on that the body does not say (the context the gateway builds into the
    prompt, and whose)."""
    partition = f"{tenant}|{namespace}"
    keyed = partition.encode() + b"\n" + canonical(body)
    if prompt is not None:
        keyed += b"\nprompt:" + prompt.encode()
    digest = hashlib.sha256(keyed + extra).hexdigest()
    return CacheKey(digest=digest, partition=partition, namespace=namespace)


def params_hash(body: dict[str, Any]) -> str:
    """For the semantic cache: everything but the last user message's text (the query), so that
    a paraphrase matches only under the same system prompt, history, model and parameters."""
    messages = body.get("messages")
    rest = dict(body)
    if isinstance(messages, list) and messages:
        rest["messages"] = messages[:-1]
    return hashlib.sha256(canonical(rest)).hexdigest()[:32]
