"""Search in vector stores: the search endpoint's page, and retrieval for a chat request
(docs/rag.md).

A query is embedded with the RAG embedding model and searched in the index within the stores
the caller may see; several queries (a list) are searched each and their hits merged, the best
score of a chunk kept. `rewrite_query` keeps the words that carry meaning (no stop words or
punctuation) for the keyword ranking; the page's `search_query` shows what was searched.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ai_gateway.errors import InvalidRequestError, NotFoundError
from ai_gateway.rag.filters import AttributeFilter
from ai_gateway.rag.index import IndexHit, VectorIndex
from ai_gateway.rag.records import Viewer
from ai_gateway.rag.service import RagService, index_errors
from ai_gateway.rag.spec import SearchBody

EmbedOne = Callable[[list[str]], Awaitable[list[list[float]]]]

_WORD = re.compile(r"[\w][\w.\-/]*[\w]|[\w]")
_STOP = frozenset(
    """a an and are as at be by can could did do does for from had has have how i if in into
    is it its me my of on or our please should so than that the their them then there
    these they this to us was we were what when where which who whom why will with would
    you your tell show explain find give""".split()  # noqa: SIM905
)


def rewrite(query: str) -> str:
    """The query's meaningful words, in order (stop words and punctuation dropped); the query
    itself when nothing is left."""
    words = [w for w in _WORD.findall(query) if w.lower() not in _STOP]
    return " ".join(words) or query


class Searcher:
    def __init__(self, service: RagService, embed: EmbedOne) -> None:
        self._service = service
        self._embed = embed

    async def page(self, store_id: str, body: SearchBody, viewer: Viewer) -> dict[str, Any]:
        """`POST /vector_stores/{id}/search`: a `vector_store.search_results.page`."""
        service = self._service
        await service.usable_store(store_id, viewer)
        queries = [body.query] if isinstance(body.query, str) else list(body.query)
        if body.rewrite_query:
            queries = [rewrite(q) for q in queries]
        threshold = body.ranking_options.score_threshold if body.ranking_options else None
        hits = await self.hits(
            [store_id], queries, body.max_num_results, threshold or None, body.filters
        )
        await service.store.touch_store(store_id, service.now())
        return {
            "object": "vector_store.search_results.page",
            "search_query": queries,
            "data": [_result(hit) for hit in hits],
            "has_more": False,
            "next_page": None,
        }

    async def retrieve(
        self,
        store_ids: Sequence[str],
        query: str,
        limit: int,
        threshold: float | None,
        viewer: Viewer,
        filters: AttributeFilter | None = None,
    ) -> list[IndexHit]:
        """For a chat request: the best passages in those stores, each of which the caller must
        see (NotFoundError naming the first it may not)."""
        wanted = list(dict.fromkeys(store_ids))
        found = {s.id: s for s in await self._service.store.get_stores(wanted, viewer)}
        now = self._service.now()
        for store_id in wanted:
            record = found.get(store_id)
            if record is None:
                raise NotFoundError(
                    f"No vector store found with id '{store_id}'.", param="vector_store_ids"
                )
            if record.expired(now):
                raise InvalidRequestError(
                    f"Vector store '{store_id}' expired; create a new one.",
                    param="vector_store_ids",
                    code="vector_store_expired",
                )
        return await self.hits(wanted, [query], limit, threshold, filters)

    async def hits(
        self,
        store_ids: list[str],
        queries: list[str],
        limit: int,
        threshold: float | None,
        filters: AttributeFilter | None,
    ) -> list[IndexHit]:
        vectors = await self._embed(queries)
        hybrid = self._service.config.hybrid
        async with index_errors():
            index = await self._service.index()
            found = await self._search(
                index, store_ids, queries, vectors, limit, threshold, filters, hybrid
            )
        if len(found) == 1:
            return found[0]
        best: dict[tuple[str, str, int], IndexHit] = {}
        for hits in found:
            for hit in hits:
                key = (hit.store_id, hit.file_id, hit.chunk)
                if key not in best or best[key].score < hit.score:
                    best[key] = hit
        return sorted(best.values(), key=lambda h: h.score, reverse=True)[:limit]

    @staticmethod
    async def _search(
        index: VectorIndex,
        store_ids: list[str],
        queries: list[str],
        vectors: list[list[float]],
        limit: int,
        threshold: float | None,
        filters: AttributeFilter | None,
        hybrid: bool,
    ) -> list[list[IndexHit]]:
        return await asyncio.gather(
            *(
                index.search(
                    store_ids,
                    vector,
                    query,
                    limit,
                    filters=filters,
                    hybrid=hybrid,
                    score_threshold=threshold,
                )
                for query, vector in zip(queries, vectors, strict=True)
            )
        )


def _result(hit: IndexHit) -> dict[str, Any]:
    return {
        "file_id": hit.file_id,
        "filename": hit.filename,
        "score": hit.score,
        "attributes": hit.attributes,
        "content": [{"type": "text", "text": hit.text}],
    }
