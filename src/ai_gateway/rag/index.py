"""The vector index's interface: chunks of files with their dense vectors, searched within a
set of vector stores, by dense similarity alone or fused with BM25 keyword scores.

Two backends (docs/rag.md): Qdrant Edge embedded in this process (index_edge.py, the default)
and a Qdrant server through qdrant-client (index_qdrant.py). Both hold the same points: one per
chunk, its id derived from (store, file, chunk number), so adding a file again replaces its
points; the payload holds `store_id` (an indexed keyword: every search filters on it), `file_id`,
`filename`, `chunk`, `text` and `attributes`. Vectors of each size (the embedding model may
change) go to a collection of their own.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ai_gateway.rag.filters import AttributeFilter
from ai_gateway.rag.records import AttributeValue

_POINTS = uuid.UUID("6f1d2c0e-4b9a-4c55-9a57-0d6c3a9e2b11")


def point_id(store_id: str, file_id: str, chunk: int) -> str:
    """The point's id: the same for the same chunk of the same file in the same store."""
    return str(uuid.uuid5(_POINTS, f"{store_id}/{file_id}/{chunk}"))


class VectorIndexError(Exception):
    """The index is unreachable or failed. The message names no secret."""


@dataclass(frozen=True, slots=True)
class ChunkPoint:
    store_id: str
    file_id: str
    filename: str
    chunk: int  # its number in the file, from 0
    text: str
    vector: list[float]  # normalized
    attributes: dict[str, AttributeValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IndexHit:
    """`score`: the cosine similarity of the chunk's vector and the query's, in [0, 1] (what a
    score threshold compares with), whatever ranked it."""

    store_id: str
    file_id: str
    filename: str
    chunk: int
    text: str
    score: float
    attributes: dict[str, AttributeValue] = field(default_factory=dict)


class VectorIndex(Protocol):
    async def upsert(self, points: Sequence[ChunkPoint]) -> None: ...

    async def delete_file(self, store_id: str, file_id: str) -> None:
        """Every point of that file in that store."""
        ...

    async def delete_store(self, store_id: str) -> None: ...

    async def set_attributes(
        self, store_id: str, file_id: str, attributes: dict[str, AttributeValue]
    ) -> None:
        """Replace the attributes of every point of that file in that store."""
        ...

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
        """The best `limit` chunks in those stores matching `filters`: ranked by reciprocal rank
        fusion of the dense ranking (`vector`) and the BM25 ranking (`text`) when `hybrid`, else
        by the dense ranking; hits below `score_threshold` left out. Best first."""
        ...

    async def count(self, store_id: str) -> int:
        """Points in that store (all vector sizes)."""
        ...

    async def aclose(self) -> None: ...
