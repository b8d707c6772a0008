"""The vector index embedded in this process: Qdrant Edge (`qdrant-edge-py`), one shard per
vector size under `<path>/<size>`.

Edge's calls are synchronous, so every one of them runs on one worker thread of this index, one
at a time and in the order they were asked for (BM25 embedding of chunks runs there too). Note:
qdrant-edge-py 0.9 holds the GIL during its calls, so while one runs the event loop waits all
the same: a few milliseconds for a search of ten thousand chunks, about 10-150 ms for a flush
(the disk's fsync), and seconds to minutes for `optimize` (bench/rag_index.py).

One process only: Edge locks a shard's write-ahead log while the shard is open, but only per
shard, once that shard is opened, and with an obscure error ("Can't init WAL: WouldBlock"). The
index takes an exclusive lock on `<path>/.lock` when it opens, so a second process fails at once
with an error saying what to do (a Qdrant server, `rag.qdrant_url`, for several instances).

Durability: every change is in Edge's write-ahead log when its call returns, which survives the
process dying (tested with a hard exit); segments are flushed at close. Flushing after each
change would add a disk sync (10-150 ms, GIL held) to every batch a file's ingestion writes,
and the chat requests on the same event loop would wait for it.

Optimization: Edge runs no optimizer by itself; until `optimize()` is called, search scans the
store's points (a few milliseconds for ten thousand, about 10 ms for fifty thousand; after
optimizing, HNSW makes that about 2-6 ms). The index never optimizes on its own: holding the GIL,
it would stop the whole gateway for as long (tens of seconds for fifty thousand chunks).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any, TypeVar

import portalocker
import qdrant_edge as edge

from ai_gateway.rag.filters import AttributeFilter
from ai_gateway.rag.index import ChunkPoint, IndexHit, VectorIndexError, point_id
from ai_gateway.rag.index_common import (
    DENSE,
    RRF_K,
    SPARSE,
    STORE_KEY,
    AnyOf,
    Between,
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

T = TypeVar("T")

_DETAIL_CHARS = 300
# Edge's bindings turn a boolean match value into the integer 1 or 0, which matches no boolean
# in the payload: booleans are also kept as the strings "true"/"false" here, and matched there.
_BOOLS = "attribute_bools"


class IndexFolderInUseError(VectorIndexError):
    """Another process (or another index in this one) has the folder open."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f"The RAG index folder {path} is in use by another process. Embedded Qdrant "
            "(Qdrant Edge) serves one process only: to run several gateway instances, set "
            "rag.qdrant_url to a Qdrant server they share."
        )


class EdgeIndex:
    """A VectorIndex in a folder of this machine. Open it with `await EdgeIndex.open(path)`."""

    def __init__(self, path: str, worker: ThreadPoolExecutor, lock_file: IO[str]) -> None:
        self._path = path
        self._worker = worker
        self._lock_file = lock_file
        self._shards: dict[int, edge.EdgeShard] = {}
        self._keywords = keyword_model()
        self._closed = False

    @classmethod
    async def open(cls, path: str) -> EdgeIndex:
        """Lock the folder (IndexFolderInUseError if another process has it) and open the shards
        in it, making the folder if need be."""
        worker = ThreadPoolExecutor(1, thread_name_prefix="rag-index-edge")
        try:
            lock_file = await asyncio.get_running_loop().run_in_executor(worker, _lock, path)
        except OSError as exc:
            worker.shutdown(wait=False)
            raise VectorIndexError(f"cannot open the index folder {path}: {exc}") from exc
        except BaseException:
            worker.shutdown(wait=False)
            raise
        index = cls(path, worker, lock_file)
        try:
            await index._run("open the index", index._load_shards)
        except BaseException:
            await index.aclose()
            raise
        return index

    async def upsert(self, points: Sequence[ChunkPoint]) -> None:
        if points:
            await self._run("upsert chunks", self._upsert, points)

    async def delete_file(self, store_id: str, file_id: str) -> None:
        await self._run("delete a file's chunks", self._delete, _file(store_id, file_id))

    async def set_attributes(
        self, store_id: str, file_id: str, attributes: dict[str, AttributeValue]
    ) -> None:
        """Replace the attributes of every chunk of that file in that store."""
        body = {"attributes": dict(attributes), _BOOLS: _flags(attributes)}
        await self._run("set a file's attributes", self._set, _file(store_id, file_id), body)

    async def delete_store(self, store_id: str) -> None:
        match: list[edge.ConditionType] = [_equals(STORE_KEY, store_id)]
        await self._run("delete a store's chunks", self._delete, edge.Filter(must=match))

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
        if not store_ids or limit < 1:
            return []
        must: list[edge.ConditionType] = [
            edge.FieldCondition(STORE_KEY, match=edge.MatchAny(list(store_ids)))
        ]
        if filters is not None:
            must.append(_render(condition(filters)))
        where = edge.Filter(must=must)
        return await self._run(
            "search", self._search, where, vector, text if hybrid else "", limit, score_threshold
        )

    async def count(self, store_id: str) -> int:
        request = edge.CountRequest(
            exact=True, filter=edge.Filter(must=[_equals(STORE_KEY, store_id)])
        )
        return await self._run(
            "count chunks", lambda: sum(shard.count(request) for shard in self._shards.values())
        )

    async def optimize(self) -> None:
        """Run Edge's optimizer on every shard: builds the HNSW graphs and drops deleted points.
        Blocks the whole process meanwhile (see the module's docstring): for maintenance, not
        for a serving gateway."""
        await self._run("optimize", lambda: [shard.optimize() for shard in self._shards.values()])

    async def aclose(self) -> None:
        """Flush and close the shards, then release the folder."""
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.get_running_loop().run_in_executor(self._worker, self._close)
        finally:
            self._worker.shutdown(wait=True)

    # --- on the worker thread ------------------------------------------------------------------

    async def _run(self, what: str, call: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise VectorIndexError(f"cannot {what}: the index is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._worker, call, *args)
        except VectorIndexError:
            raise
        except Exception as exc:  # Edge raises plain Exceptions
            detail = str(exc)[:_DETAIL_CHARS] or "no detail"
            raise VectorIndexError(f"cannot {what}: {type(exc).__name__}: {detail}") from exc

    def _load_shards(self) -> None:
        for name in sorted(os.listdir(self._path)):
            if name.isdigit() and os.path.isdir(os.path.join(self._path, name)):
                self._shards[int(name)] = self._open_shard(int(name))

    def _open_shard(self, size: int) -> edge.EdgeShard:
        folder = os.path.join(self._path, str(size))
        if os.path.isdir(os.path.join(folder, "segments")):
            shard = edge.EdgeShard.load(folder)
        else:
            shard = edge.EdgeShard.create(folder, _config(size))
        if STORE_KEY not in shard.info().payload_schema:
            tenant = edge.KeywordIndexParams(is_tenant=True)
            shard.update(edge.UpdateOperation.create_field_index(STORE_KEY, tenant))
        return shard

    def _shard(self, size: int) -> edge.EdgeShard:
        shard = self._shards.get(size)
        if shard is None:
            shard = self._shards[size] = self._open_shard(size)
        return shard

    def _upsert(self, points: Sequence[ChunkPoint]) -> None:
        by_size: defaultdict[int, list[edge.Point]] = defaultdict(list)
        for point in points:
            by_size[len(point.vector)].append(self._point(point))
        for size, batch in by_size.items():
            shard = self._shard(size)
            shard.update(edge.UpdateOperation.upsert_points(batch))

    def _point(self, point: ChunkPoint) -> edge.Point:
        body = payload(point)
        body[_BOOLS] = _flags(point.attributes)
        vectors: dict[str, edge.NamedVector] = {
            DENSE: point.vector,
            SPARSE: self._keywords.embed_document(point.text),
        }
        return edge.Point(point_id(point.store_id, point.file_id, point.chunk), vectors, body)

    def _delete(self, where: edge.Filter) -> None:
        for shard in self._shards.values():
            shard.update(edge.UpdateOperation.delete_points_by_filter(where))

    def _set(self, where: edge.Filter, body: dict[str, Any]) -> None:
        for shard in self._shards.values():
            shard.update(edge.UpdateOperation.set_payload_by_filter(where, body))

    def _search(
        self,
        where: edge.Filter,
        vector: list[float],
        text: str,
        limit: int,
        threshold: float | None,
    ) -> list[IndexHit]:
        shard = self._shards.get(len(vector))
        if shard is None:
            return []
        sparse = self._keywords.embed_query(text) if text else None
        if sparse is None or not sparse.indices:  # dense alone: its score is the cosine
            dense = edge.Query.Nearest(vector, using=DENSE)
            found = shard.query(
                edge.QueryRequest(
                    limit=limit,
                    query=dense,
                    filter=where,
                    with_payload=True,
                    score_threshold=threshold if threshold is not None and threshold > 0 else None,
                )
            )
            hits = (hit(point.payload, clip(point.score)) for point in found)
            return [h for h in hits if passes(h.score, threshold)]
        # Ranked by fusion; each hit's score is computed from its dense vector. With a threshold,
        # every fused candidate is fetched, so that hits below it leave room for others.
        many = candidates(limit)
        prefetches = [
            edge.Prefetch(limit=many, query=edge.Query.Nearest(vector, using=DENSE), filter=where),
            edge.Prefetch(limit=many, query=edge.Query.Nearest(sparse, using=SPARSE), filter=where),
        ]
        found = shard.query(
            edge.QueryRequest(
                limit=limit if threshold is None else 2 * many,
                query=edge.Fusion.Rrf(k=RRF_K),  # type: ignore[arg-type]  # the stub omits Rrf
                prefetches=prefetches,
                with_vector=[DENSE],
                with_payload=True,
            )
        )
        query = unit(vector)
        fused = []
        for point in found:
            score = cosine(query, _dense(point.vector))
            if passes(score, threshold):
                fused.append((point.score, hit(point.payload, score)))
        return by_fusion(fused, limit)

    def _close(self) -> None:
        try:
            for shard in self._shards.values():
                shard.flush()
                shard.close()
        finally:
            self._shards.clear()
            _unlock(self._lock_file)


def _config(size: int) -> edge.EdgeConfig:
    return edge.EdgeConfig(
        vectors={DENSE: edge.EdgeVectorParams(size=size, distance=edge.Distance.Cosine)},
        sparse_vectors={SPARSE: edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf)},
    )


def _dense(vector: edge.Vector | None) -> list[float]:
    if isinstance(vector, dict):
        dense = vector.get(DENSE)
        if isinstance(dense, list):
            return dense  # type: ignore[return-value]  # a dense vector: list[float]
    raise VectorIndexError("the index returned a point without its dense vector")


def _flags(attributes: dict[str, AttributeValue]) -> dict[str, str]:
    return {key: str(value).lower() for key, value in attributes.items() if isinstance(value, bool)}


def _file(store_id: str, file_id: str) -> edge.Filter:
    return edge.Filter(must=[_equals(STORE_KEY, store_id), _equals("file_id", file_id)])


def _equals(key: str, value: str) -> edge.FieldCondition:
    return edge.FieldCondition(key, match=edge.MatchValue(value))


def _render(node: Condition) -> edge.ConditionType:
    if isinstance(node, Equals):
        if isinstance(node.value, bool):
            flag = edge.MatchValue(str(node.value).lower())
            return edge.FieldCondition(attribute_path(node.key, _BOOLS), match=flag)
        return edge.FieldCondition(attribute_path(node.key), match=edge.MatchValue(node.value))
    if isinstance(node, AnyOf):
        return edge.FieldCondition(attribute_path(node.key), match=edge.MatchAny(list(node.values)))
    if isinstance(node, Between):
        between = edge.RangeFloat(gt=node.gt, gte=node.gte, lt=node.lt, lte=node.lte)
        return edge.FieldCondition(attribute_path(node.key), range=between)
    return edge.Filter(
        must=[_render(part) for part in node.must] or None,
        should=[_render(part) for part in node.should] or None,
        must_not=[_render(part) for part in node.must_not] or None,
    )


def _lock(path: str) -> IO[str]:
    """Make the folder if need be and take its lock, held until `_unlock`."""
    os.makedirs(path, exist_ok=True)
    lock_file = open(os.path.join(path, ".lock"), "a")  # noqa: SIM115  # held while open
    try:
        portalocker.lock(
            lock_file, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING
        )
    except portalocker.exceptions.LockException as exc:
        lock_file.close()
        raise IndexFolderInUseError(path) from exc
    return lock_file


def _unlock(lock_file: IO[str]) -> None:
    with contextlib.suppress(Exception):
        portalocker.unlock(lock_file)
    lock_file.close()
