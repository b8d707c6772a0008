"""App assembly of RAG (docs/rag.md): the store of files and vector stores (the analytics
database), file bytes under the data directory, the vector index (Qdrant Edge embedded under
the data directory, or a Qdrant server), embeddings through the gateway's own routing, the
ingestion workers, the API and the retrieval stage.

The index opens on first use (a file indexed, a search), so a gateway whose callers never use
RAG never opens it: embedded Qdrant locks its folder for one process, and nothing is spent.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from ai_gateway.api.common import BodyLimit
from ai_gateway.api.vector_stores import VectorStoresAPI
from ai_gateway.cache.semantic_qdrant import QdrantServer, SemanticIndexError
from ai_gateway.observability.logging import get_logger
from ai_gateway.pipeline.call import Call
from ai_gateway.pipeline.retrieve import Count, Retrieve
from ai_gateway.rag.blobs import FileBlobs
from ai_gateway.rag.chunking import ChunkingStrategy
from ai_gateway.rag.config import RagConfig
from ai_gateway.rag.index import VectorIndex, VectorIndexError
from ai_gateway.rag.ingest import Ingestor
from ai_gateway.rag.search import Searcher
from ai_gateway.rag.service import RagService
from ai_gateway.settings import Config
from ai_gateway.stores.analytics import StoreUnavailableError
from ai_gateway.stores.factory import open_rag_store

log = get_logger(__name__)


class IndexOpener:
    """Opens the index the config names once, on first use; `aclose()` closes it if opened."""

    def __init__(self, config: RagConfig, data_dir: str) -> None:
        self._config = config
        self._path = config.qdrant_path or os.path.join(data_dir, "rag", "index")
        self._index: VectorIndex | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> VectorIndex:
        if self._index is not None:
            return self._index
        async with self._lock:
            if self._index is None:
                self._index = await self._open()
        return self._index

    async def _open(self) -> VectorIndex:
        config = self._config
        if config.qdrant_url is not None:
            from ai_gateway.rag.index_qdrant import QdrantIndex

            try:
                server = QdrantServer.parse(config.qdrant_url.get_secret_value())
            except SemanticIndexError:
                raise VectorIndexError(
                    "rag.qdrant_url (QDRANT_URL) must be an http(s) URL such as "
                    "http://127.0.0.1:6333 (an API key goes in as https://:KEY@host:6333)."
                ) from None
            api_key = config.qdrant_api_key
            return QdrantIndex(
                config.collection,
                url=server.url,
                api_key=api_key.get_secret_value() if api_key is not None else server.api_key,
            )
        from ai_gateway.rag.index_edge import EdgeIndex

        return await EdgeIndex.open(self._path)

    async def aclose(self) -> None:
        if self._index is not None:
            await self._index.aclose()
            self._index = None


@dataclass
class RagParts:
    api: VectorStoresAPI
    stage: Retrieve
    service: RagService | None = None
    opener: IndexOpener | None = None

    async def start(self) -> None:
        if self.service is None:
            return
        try:
            await self.service.store.start()
        except StoreUnavailableError as exc:
            # Start anyway: the store connects on its next use; RAG requests get a 503 until
            # then, and ingestion resumes when it is back.
            log.warning("rag_store_unavailable_at_start", error=str(exc)[:300])
        self.service.ingestor.start()

    async def aclose(self) -> None:
        if self.service is None:
            return
        await self.service.ingestor.aclose()
        if self.opener is not None:
            await self.opener.aclose()
        await self.service.store.aclose()


def build_rag(
    config: Config,
    call: Call,
    count: Count,
    window_of: Callable[[str], int | None],
    body: BodyLimit,
) -> RagParts:
    rag = config.rag
    window_share = config.integrations.blocks.window_share
    if not rag.enabled:
        return RagParts(
            api=VectorStoresAPI(None, None, rag.scope, body),
            stage=Retrieve(None, rag, count, window_of, window_share),
        )
    data_dir = config.gateway.data_dir
    store = open_rag_store(config.gateway)
    opener = IndexOpener(rag, data_dir)
    blobs = FileBlobs(rag.files_dir or os.path.join(data_dir, "rag", "files"))
    embed = partial(call.embed_many, rag.embedding_model)
    ingestor = Ingestor(rag, store, opener, blobs, embed)
    auto = ChunkingStrategy(
        rag.auto_chunking.max_chunk_size_tokens, rag.auto_chunking.chunk_overlap_tokens
    )
    service = RagService(rag, store, opener, blobs, ingestor, auto=auto)
    searcher = Searcher(service, embed)
    return RagParts(
        api=VectorStoresAPI(service, searcher, rag.scope, body),
        stage=Retrieve(searcher, rag, count, window_of, window_share),
        service=service,
        opener=opener,
    )
