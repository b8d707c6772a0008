"""The vector index on a Qdrant server, through qdrant-client's async client: one collection per
vector size, `<collection>_<size>`, made when a vector of that size first comes.

Each collection holds the dense vector `dense` (cosine) and the sparse vector `bm25` (the IDF
modifier on, so the server weighs terms by their rarity), and a tenant keyword index on
`store_id`. Sparse vectors come from the same BM25 model as embedded Qdrant's (index_common.py),
computed here, off the event loop; hybrid search fuses the two rankings on the server with
reciprocal rank fusion (its default k, which Edge is given explicitly).

The client may also be qdrant-client's local mode (`AsyncQdrantClient(location=":memory:")` or
`path=`), which emulates the server's API in Python: tests and the benchmark use it. It has no
payload indexes, so none is made there.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

from qdrant_client import AsyncQdrantClient, models

from ai_gateway.rag.filters import AttributeFilter
from ai_gateway.rag.index import ChunkPoint, IndexHit, VectorIndexError, point_id
from ai_gateway.rag.index_common import (
    DENSE,
    SPARSE,
    STORE_KEY,
    AnyOf,
    Between,
    Clause,
    Condition,
    Equals,
    attribute_path,
    by_fusion,
    candidates,
    clip,
    condition,
    cosine,
    hit,
    keyword_model,
    passes,
    payload,
    unit,
)
from ai_gateway.rag.records import AttributeValue
from ai_gateway.redaction import scrub

T = TypeVar("T")

_DETAIL_CHARS = 300
_TIMEOUT_S = 30


class QdrantIndex:
    """A VectorIndex on a Qdrant server at `url` (no credentials in it; the key as `api_key`), or
    through `client`, an AsyncQdrantClient made elsewhere. The index owns the client: `aclose`
    closes it."""

    def __init__(
        self,
        collection: str,
        *,
        url: str | None = None,
        api_key: str | None = None,
        client: AsyncQdrantClient | None = None,
    ) -> None:
        if (url is None) == (client is None):
            raise ValueError("QdrantIndex takes a url or a client, one of them")
        if client is None:
            # check_compatibility=False: the check is a blocking request in the constructor.
            client = AsyncQdrantClient(
                url=url, api_key=api_key, timeout=_TIMEOUT_S, check_compatibility=False
            )
        self._client = client
        self._prefix = f"{collection}_"
        self._names = re.compile(rf"^{re.escape(collection)}_(\d+)$")
        self._api_key = api_key
        options = client.init_options
        self._local = options.get("location") == ":memory:" or options.get("path") is not None
        self._sizes: set[int] = set()  # collections known to exist
        self._keywords = keyword_model()

    async def upsert(self, points: Sequence[ChunkPoint]) -> None:
        if not points:
            return
        sparse = await asyncio.to_thread(
            lambda: [self._keywords.embed_document(point.text) for point in points]
        )
        by_size: dict[int, list[models.PointStruct]] = {}
        for point, keywords in zip(points, sparse, strict=True):
            vectors: dict[str, Any] = {
                DENSE: point.vector,
                SPARSE: models.SparseVector(indices=keywords.indices, values=keywords.values),
            }
            struct = models.PointStruct(
                id=point_id(point.store_id, point.file_id, point.chunk),
                vector=vectors,
                payload=payload(point),
            )
            by_size.setdefault(len(point.vector), []).append(struct)
        for size, batch in by_size.items():
            await self._ensure(size)
            await self._call(
                "upsert chunks",
                self._client.upsert(self._name(size), batch, wait=True),
            )

    async def delete_file(self, store_id: str, file_id: str) -> None:
        where = models.Filter(must=[_equals(STORE_KEY, store_id), _equals("file_id", file_id)])
        await self._delete("delete a file's chunks", where)

    async def set_attributes(
        self, store_id: str, file_id: str, attributes: dict[str, AttributeValue]
    ) -> None:
        """Replace the attributes of every chunk of that file in that store."""
        where = models.Filter(must=[_equals(STORE_KEY, store_id), _equals("file_id", file_id)])
        selector = models.FilterSelector(filter=where)
        for name in await self._collections():
            await self._call(
                "set a file's attributes",
                self._client.set_payload(
                    name, payload={"attributes": dict(attributes)}, points=selector, wait=True
                ),
            )

    async def delete_store(self, store_id: str) -> None:
        await self._delete(
            "delete a store's chunks", models.Filter(must=[_equals(STORE_KEY, store_id)])
        )

    async def search(
        self,
        store_ids: Sequence[str],
        vector: list[float],
        text: str,
        limit: int,
        *,
        filters: AttributeFilter | None = None,
        hybrid: bool = True,
        score_threshold: float | None = None,
    ) -> list[IndexHit]:
        if not store_ids or limit < 1 or not await self._exists(len(vector)):
            return []
        must: list[Any] = [
            models.FieldCondition(key=STORE_KEY, match=models.MatchAny(any=list(store_ids)))
        ]
        if filters is not None:
            must.append(_render(condition(filters)))
        where = models.Filter(must=must)
        name = self._name(len(vector))
        keywords = self._keywords.embed_query(text) if hybrid and text else None
        threshold = score_threshold
        if keywords is None or not keywords.indices:  # dense alone: its score is the cosine
            found = await self._call(
                "search",
                self._client.query_points(
                    name,
                    query=vector,
                    using=DENSE,
                    query_filter=where,
                    limit=limit,
                    with_payload=True,
                    score_threshold=threshold if threshold is not None and threshold > 0 else None,
                ),
            )
            hits = (hit(point.payload, clip(point.score)) for point in found.points)
            return [h for h in hits if passes(h.score, threshold)]
        # Ranked by fusion; each hit's score is computed from its dense vector. With a threshold,
        # every fused candidate is fetched, so that hits below it leave room for others.
        many = candidates(limit)
        sparse = models.SparseVector(indices=keywords.indices, values=keywords.values)
        prefetch = [
            models.Prefetch(query=vector, using=DENSE, filter=where, limit=many),
            models.Prefetch(query=sparse, using=SPARSE, filter=where, limit=many),
        ]
        found = await self._call(
            "search",
            self._client.query_points(
                name,
                prefetch=prefetch,
                query=models.FusionQuery(fusion=models.Fusion.RRF),
                limit=limit if threshold is None else 2 * many,
                with_payload=True,
                with_vectors=[DENSE],
            ),
        )
        query = unit(vector)
        fused = []
        for point in found.points:
            score = cosine(query, _dense(point.vector))
            if passes(score, threshold):
                fused.append((point.score, hit(point.payload, score)))
        return by_fusion(fused, limit)

    async def count(self, store_id: str) -> int:
        where = models.Filter(must=[_equals(STORE_KEY, store_id)])
        total = 0
        for name in await self._collections():
            counted = await self._call(
                "count chunks",
                self._client.count(name, count_filter=where, exact=True),
            )
            total += counted.count
        return total

    async def aclose(self) -> None:
        await self._client.close()

    # --- helpers -------------------------------------------------------------------------------

    def _name(self, size: int) -> str:
        return f"{self._prefix}{size}"

    async def _call(self, doing: str, call: Awaitable[T]) -> T:
        try:
            return await call
        except Exception as exc:
            detail = scrub(str(exc), (self._api_key,))[:_DETAIL_CHARS] or "no detail"
            raise VectorIndexError(
                f"Qdrant could not {doing}: {type(exc).__name__}: {detail}"
            ) from exc

    async def _exists(self, size: int) -> bool:
        if size not in self._sizes and await self._call(
            "find a collection", self._client.collection_exists(self._name(size))
        ):
            self._sizes.add(size)
        return size in self._sizes

    async def _collections(self) -> list[str]:
        listed = await self._call("list collections", self._client.get_collections())
        return [c.name for c in listed.collections if self._names.match(c.name)]

    async def _ensure(self, size: int) -> None:
        """Make the collection of `size`-long vectors and its index unless they exist."""
        if await self._exists(size):
            return
        name = self._name(size)
        try:
            await self._client.create_collection(
                name,
                vectors_config={
                    DENSE: models.VectorParams(size=size, distance=models.Distance.COSINE)
                },
                sparse_vectors_config={
                    SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)
                },
            )
        except Exception as exc:
            if not await self._client.collection_exists(name):  # else another instance made it
                detail = scrub(str(exc), (self._api_key,))[:_DETAIL_CHARS]
                raise VectorIndexError(
                    f"Qdrant could not make collection {name}: {detail}"
                ) from exc
        if not self._local:  # local mode has no payload indexes (and warns)
            tenant = models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True)
            await self._call(
                "index store ids",
                self._client.create_payload_index(name, STORE_KEY, field_schema=tenant),
            )
        self._sizes.add(size)

    async def _delete(self, doing: str, where: models.Filter) -> None:
        selector = models.FilterSelector(filter=where)
        for name in await self._collections():
            await self._call(
                doing,
                self._client.delete(name, points_selector=selector, wait=True),
            )


def _dense(vector: Any) -> list[float]:
    if isinstance(vector, dict) and isinstance(vector.get(DENSE), list):
        return vector[DENSE]  # type: ignore[no-any-return]
    raise VectorIndexError("Qdrant returned a point without its dense vector")


def _equals(key: str, value: str) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _render(node: Condition) -> Any:
    """`node` as a qdrant-client condition (a FieldCondition or a Filter)."""
    if isinstance(node, Equals):
        return models.FieldCondition(
            key=attribute_path(node.key), match=models.MatchValue(value=node.value)
        )
    if isinstance(node, AnyOf):
        return models.FieldCondition(
            key=attribute_path(node.key), match=models.MatchAny(any=list(node.values))
        )
    if isinstance(node, Between):
        between = models.Range(gt=node.gt, gte=node.gte, lt=node.lt, lte=node.lte)
        return models.FieldCondition(key=attribute_path(node.key), range=between)
    assert isinstance(node, Clause)
    return models.Filter(
        must=[_render(part) for part in node.must] or None,
        should=[_render(part) for part in node.should] or None,
        must_not=[_render(part) for part in node.must_not] or None,
    )
