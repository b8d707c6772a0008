"""The semantic cache's side of a request: which requests it may answer, what it searches for,
and what it stores (the vectors themselves live in cache/semantic.py's index).

The query is the last user message's text, embedded with the configured embedding model. The
rest of the request (system prompt, history, parameters, model) must match exactly: it is a
hash in the index's filter, with the tenant's partition and the model name, never part of the
embedded text. Only requests without tools, tool results or images, with a non-empty query and
at most `max_messages` messages take part.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from ai_gateway.cache.config import SemanticConfig
from ai_gateway.cache.key import CacheKey, params_hash

Embed = Callable[[str], Awaitable[Sequence[float]]]


class SemanticMatch(Protocol):
    @property
    def key(self) -> str: ...  # the exact entry's digest
    @property
    def similarity(self) -> float: ...


class SemanticIndex(Protocol):
    """The vector index (cache/semantic.py's Qdrant index)."""

    async def search(
        self,
        vector: Sequence[float],
        *,
        partition: str,
        params: str,
        threshold: float,
        now: float,
    ) -> SemanticMatch | None: ...

    async def add(
        self,
        vector: Sequence[float],
        *,
        key: str,
        partition: str,
        params: str,
        expires_at: float,
    ) -> None: ...

    async def clear(self, partition: str | None = None) -> None: ...

    async def aclose(self) -> None: ...


_REMEMBERED = 1024  # vectors of recent misses, kept to store their answer without embedding again


class SemanticLookup:
    def __init__(
        self,
        index: SemanticIndex,
        embed: Embed,
        config: SemanticConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._index = index
        self._embed = embed
        self._config = config
        self._clock = clock
        self._vectors: OrderedDict[str, Sequence[float]] = OrderedDict()

    def query_of(self, body: dict[str, Any]) -> str | None:
        """The text to embed, or None when the request may not use the semantic cache."""
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return None
        if len(messages) > self._config.max_messages or body.get("tools") or body.get("functions"):
            return None
        for message in messages:
            if not isinstance(message, dict) or message.get("role") in ("tool", "function"):
                return None
            if message.get("tool_calls"):
                return None
            content = message.get("content")
            if isinstance(content, list) and any(
                not isinstance(part, dict) or part.get("type") != "text" for part in content
            ):
                return None  # images, audio, files
        last = messages[-1]
        if last.get("role") != "user":
            return None
        content = last.get("content")
        if isinstance(content, list):
            content = " ".join(str(part.get("text", "")) for part in content)
        text = content.strip() if isinstance(content, str) else ""
        return text or None

    async def search(self, body: dict[str, Any], key: CacheKey, model: str) -> SemanticMatch | None:
        query = self.query_of(body)
        if query is None:
            return None
        vector = await self._embed(query)
        self._remember(key.digest, vector)
        return await self._index.search(
            vector,
            partition=f"{key.partition}|{model}",
            params=params_hash(body),
            threshold=self._config.threshold,
            now=self._clock(),
        )

    async def add(self, body: dict[str, Any], key: CacheKey, model: str, ttl_s: float) -> None:
        vector = self._vectors.pop(key.digest, None)
        if vector is None:
            query = self.query_of(body)
            if query is None:
                return
            vector = await self._embed(query)
        await self._index.add(
            vector,
            key=key.digest,
            partition=f"{key.partition}|{model}",
            params=params_hash(body),
            expires_at=self._clock() + ttl_s,
        )

    async def clear(self) -> None:
        """Drop every point. (A namespace's or one entry's points need no clearing: a match is
        served only from the exact entry it points to, which the store no longer has.)"""
        await self._index.clear(None)

    async def aclose(self) -> None:
        await self._index.aclose()

    def _remember(self, digest: str, vector: Sequence[float]) -> None:
        self._vectors[digest] = vector
        while len(self._vectors) > _REMEMBERED:
            self._vectors.popitem(last=False)
