"""The semantic cache's vector index: the query vectors of cached answers, searched by cosine
similarity within a partition. Qdrant, embedded in this process or a server.

A point is one cached answer. Its id derives from the answer's exact-cache key (storing the same
key again replaces it); its payload holds that key, the partition (the cache stage builds it from
the tenant scope, the namespace and the model), a hash of the request's other parameters, and
when the answer expires. A search matches only points of the same partition and parameters that
have not expired: payload filters, never a prefix of the embedded text, so two partitions never
see each other's points. Vectors of each size (the embedding model may change) have their own
collection, `<collection>_<size>`, made on first use.

Embedded Qdrant ("local mode") does its work synchronously, even behind the async client, so it
runs on a thread of its own with an event loop of its own: one call at a time, in order, while
the gateway's event loop only waits. It holds a file lock on its folder, so one process at a time
may use it. A Qdrant server (`qdrant_url`) is used through the async client, on the gateway's
loop. `qdrant_client` itself is imported on first use, off the event loop: it is slow to import,
and a gateway without the semantic cache never pays for it.

Every failure of the index raises SemanticIndexError, whose message names no secret: the cache
stage turns it into a cache bypass.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ai_gateway.cache.config import SemanticConfig
from ai_gateway.cache.semantic_qdrant import (
    FolderInUseError,
    LocalThread,
    QdrantServer,
    SemanticIndexError,
    create_collection,
    index_error,
    open_embedded,
)

if TYPE_CHECKING:
    from qdrant_client import AsyncQdrantClient, models

__all__ = ["SemanticIndex", "SemanticIndexError", "SemanticMatch", "point_id"]

T = TypeVar("T")

# Point ids are uuid5 of the exact-cache key in this namespace.
_POINT_IDS = uuid.uuid5(uuid.NAMESPACE_URL, "urn:devmentor:ai-gateway:semantic-cache")
# A lookup sits on the request's path: past this, a bypass is worth more than the answer.
_SERVER_TIMEOUT_S = 2
# After embedded Qdrant failed to open (its folder in use, say), wait this long before trying
# again, instead of on every request.
_REOPEN_AFTER_S = 30.0


@dataclass(frozen=True, slots=True)
class SemanticMatch:
    key: str  # the exact-cache key of the entry the vector was stored for
    similarity: float  # cosine similarity, 0..1


def point_id(key: str) -> str:
    """The point of an exact-cache key: the same key always lands on the same point."""
    return str(uuid.uuid5(_POINT_IDS, key))


class SemanticIndex:
    """Vectors of cached answers' queries, searched by cosine similarity within a partition.

    `now` and `expires_at` are Unix times (`time.time()`). Expired points never match; they are
    deleted by a purge that `add` runs at most once per `purge_every_s` (by `clock`)."""

    def __init__(
        self,
        collection: str,
        *,
        path: str | None = None,
        server: QdrantServer | None = None,
        clock: Callable[[], float] = time.time,
        purge_every_s: float = 600.0,
    ) -> None:
        if (path is None) == (server is None):
            raise ValueError("give either the path of an embedded index or a server")
        self._collection = collection
        self._path = path
        self._server = server
        self._clock = clock
        self._purge_every_s = purge_every_s
        self._where = f"at {server.shown}" if server is not None else f"embedded in {path}"
        self._client: AsyncQdrantClient | None = None
        self._thread: LocalThread | None = None  # embedded Qdrant's own thread
        self._opening = asyncio.Lock()
        self._creating = asyncio.Lock()
        self._sizes: set[int] = set()  # the vector sizes whose collection is known to exist
        self._next_purge = 0.0  # the first `add` purges what expired while the gateway was down
        self._open_failed: tuple[float, str] | None = None  # (retry after, message)
        self._closed = False

    @classmethod
    def open(
        cls,
        config: SemanticConfig,
        data_dir: str,
        *,
        clock: Callable[[], float] = time.time,
        purge_every_s: float = 600.0,
    ) -> SemanticIndex:
        """The index the config names: a server at `qdrant_url`, else embedded Qdrant under
        `qdrant_path` (or `<data_dir>/qdrant`). Nothing is opened, created or imported until the
        first call; a `qdrant_url` that is not an http(s) URL raises SemanticIndexError now."""
        if config.qdrant_url is not None:
            server = QdrantServer.parse(config.qdrant_url.get_secret_value())
            return cls(config.collection, server=server, clock=clock, purge_every_s=purge_every_s)
        path = config.qdrant_path or os.path.join(data_dir, "qdrant")
        return cls(config.collection, path=path, clock=clock, purge_every_s=purge_every_s)

    async def search(
        self,
        vector: Sequence[float],
        *,
        partition: str,
        params: str,
        threshold: float,
        now: float,
    ) -> SemanticMatch | None:
        """The nearest unexpired point of this partition and params whose cosine similarity
        reaches `threshold` (embedded Qdrant: exceeds it), or None."""
        await self._open()  # imports qdrant_client off the event loop, the first time
        from qdrant_client import models

        name = await self._collection_for(_size(vector), create=False)
        if name is None:
            return None
        where = models.Filter(
            must=[
                _equals("partition", partition),
                _equals("params", params),
                models.FieldCondition(key="expires_at", range=models.Range(gt=now)),
            ]
        )
        found = await self._call(
            "search",
            lambda client: client.query_points(
                name,
                query=list(vector),
                query_filter=where,
                limit=1,
                score_threshold=threshold,
                with_payload=["key"],
            ),
        )
        if not found.points:
            return None
        best = found.points[0]
        key = (best.payload or {}).get("key")
        if not isinstance(key, str):
            return None
        return SemanticMatch(key=key, similarity=min(1.0, max(0.0, best.score)))

    async def add(
        self,
        vector: Sequence[float],
        *,
        key: str,
        partition: str,
        params: str,
        expires_at: float,
    ) -> None:
        """Store the vector of `key`'s query (replacing the point of a key stored before)."""
        await self._open()
        from qdrant_client import models

        size = _size(vector)
        name = await self._collection_for(size, create=True)
        assert name is not None  # made if missing
        point = models.PointStruct(
            id=point_id(key),
            vector=list(vector),
            payload={
                "key": key,
                "partition": partition,
                "params": params,
                "expires_at": expires_at,
            },
        )
        try:
            await self._call("store a vector", lambda client: client.upsert(name, points=[point]))
        except SemanticIndexError:
            self._sizes.discard(size)  # in case the collection was deleted: look again next time
            raise
        await self._purge_if_due()

    async def clear(self, partition: str | None = None) -> None:
        """Delete the points of one partition, or (None) every point, in every vector size."""
        await self._open()
        from qdrant_client import models

        every = partition is None
        where = models.Filter(must=[] if every else [_equals("partition", partition or "")])
        for name in await self._collections():
            await self._delete(name, where, doing="clear")

    async def aclose(self) -> None:
        """Close the client (releasing embedded Qdrant's folder) and its thread. Idempotent."""
        self._closed = True
        client, thread = self._client, self._thread
        self._client = self._thread = None
        try:
            if client is not None:
                await (thread.run(client.close()) if thread is not None else client.close())
        except Exception as exc:
            raise self._failure("close", exc) from exc
        finally:
            if thread is not None:
                thread.stop()

    # -- the collections -------------------------------------------------------------------------

    async def _collection_for(self, size: int, *, create: bool) -> str | None:
        """The collection of vectors of this size; None if it does not exist and not `create`."""
        name = f"{self._collection}_{size}"
        if size in self._sizes:
            return name
        async with self._creating:
            if size not in self._sizes:
                if create:
                    indexes = self._server is not None
                    await self._call(
                        "create a collection",
                        lambda client: create_collection(client, name, size, indexes=indexes),
                    )
                elif not await self._call(
                    "look up a collection", lambda client: client.collection_exists(name)
                ):
                    return None
                self._sizes.add(size)
        return name

    async def _collections(self) -> list[str]:
        """Every collection of this index (each vector size), listed afresh."""
        listed = await self._call("list collections", lambda client: client.get_collections())
        prefix = f"{self._collection}_"
        names = []
        for collection in listed.collections:
            size = collection.name.removeprefix(prefix)
            if collection.name.startswith(prefix) and size.isdigit():
                self._sizes.add(int(size))
                names.append(collection.name)
        return sorted(names)

    async def _purge_if_due(self) -> None:
        from qdrant_client import models

        now = self._clock()
        if now < self._next_purge:
            return
        self._next_purge = now + self._purge_every_s
        expired = models.Filter(
            must=[models.FieldCondition(key="expires_at", range=models.Range(lte=now))]
        )
        for name in await self._collections():
            await self._delete(name, expired, doing="purge expired vectors")

    async def _delete(self, name: str, where: models.Filter, *, doing: str) -> None:
        from qdrant_client import models

        selector = models.FilterSelector(filter=where)
        await self._call(doing, lambda client: client.delete(name, points_selector=selector))

    # -- the client ------------------------------------------------------------------------------

    async def _call(
        self, doing: str, call: Callable[[AsyncQdrantClient], Coroutine[Any, Any, T]]
    ) -> T:
        """Run one call of the client (on embedded Qdrant's thread, if embedded); any failure
        becomes a SemanticIndexError."""
        client = await self._open()
        try:
            if self._thread is not None:
                return await self._thread.run(call(client))
            return await call(client)
        except Exception as exc:
            raise self._failure(doing, exc) from exc

    async def _open(self) -> AsyncQdrantClient:
        if self._client is not None:
            return self._client
        async with self._opening:
            if self._closed:
                raise SemanticIndexError("The semantic cache's index is closed.")
            if self._client is None:
                self._client = await self._connect()
            return self._client

    async def _connect(self) -> AsyncQdrantClient:
        if self._server is not None:
            server = self._server
            await asyncio.to_thread(importlib.import_module, "qdrant_client")  # slow to import
            from qdrant_client import AsyncQdrantClient

            # check_compatibility=False: the check is a blocking request in the constructor.
            return AsyncQdrantClient(
                url=server.url,
                api_key=server.api_key,
                timeout=_SERVER_TIMEOUT_S,
                check_compatibility=False,
            )
        assert self._path is not None
        if self._open_failed is not None and time.monotonic() < self._open_failed[0]:
            raise SemanticIndexError(self._open_failed[1])
        thread = LocalThread()
        try:
            client = await thread.run(open_embedded(self._path))
        except Exception as exc:
            thread.stop()
            error = self._embedded_open_error(exc)
            self._open_failed = (time.monotonic() + _REOPEN_AFTER_S, str(error))
            raise error from exc
        self._open_failed = None
        self._thread = thread
        return client

    def _embedded_open_error(self, exc: Exception) -> SemanticIndexError:
        if isinstance(exc, FolderInUseError):
            return SemanticIndexError(
                f"The semantic cache's index folder {self._path} is in use by another process: "
                "embedded Qdrant lets one process at a time use a folder. For several gateway "
                "instances, run a Qdrant server and set cache.semantic.qdrant_url (or give each "
                "instance its own cache.semantic.qdrant_path)."
            )
        return self._failure("open", exc)

    def _failure(self, doing: str, exc: Exception) -> SemanticIndexError:
        secrets = (self._server.api_key,) if self._server is not None else ()
        return index_error(f"Qdrant {self._where} could not {doing}", exc, secrets)


def _equals(field: str, value: str) -> models.FieldCondition:
    from qdrant_client import models

    return models.FieldCondition(key=field, match=models.MatchValue(value=value))


def _size(vector: Sequence[float]) -> int:
    if not vector:
        raise SemanticIndexError("An empty vector cannot be searched or stored.")
    return len(vector)
