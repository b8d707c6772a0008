"""The `rag:` section of the config file: files, vector stores and retrieval (docs/rag.md).

Part of the config file's schema, so in the settings layer: it imports nothing of the code that
acts on it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

# Who a new file or vector store belongs to: the key that created it, its user (a key without a
# user: that key), or its team (a user without a team: that user). The master key sees all.
RagScope = Literal["key", "user", "team"]

MiB = 1024 * 1024


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RagLimits(_Frozen):
    """Beyond `max_file_bytes` an upload gets 413; beyond the others, 400 (files per store) or
    the file is `failed` (chunks per file)."""

    max_file_bytes: int = Field(default=20 * MiB, ge=1)
    max_files_per_store: int = Field(default=10_000, ge=1)
    max_chunks_per_file: int = Field(default=5_000, ge=1)


class AutoChunking(_Frozen):
    """What `{"type": "auto"}` means: OpenAI's 800 tokens with 400 of overlap by default. The
    default embedding model (all-MiniLM-L6-v2) reads only the first 256 word pieces of a text,
    so the dense ranking sees the start of such a chunk and the keyword ranking the whole of it;
    docs/rag.md has the recall of each size."""

    max_chunk_size_tokens: int = Field(default=800, ge=100, le=4096)
    chunk_overlap_tokens: int = Field(default=400, ge=0)

    @model_validator(mode="after")
    def _half_at_most(self) -> AutoChunking:
        if self.chunk_overlap_tokens * 2 > self.max_chunk_size_tokens:
            raise ValueError("chunk_overlap_tokens must not exceed half of max_chunk_size_tokens")
        return self


class RagConfig(_Frozen):
    """`embedding_model`: any embedding model name the gateway serves (the built-in local model
    by default); changing it makes earlier vectors unsearchable until their files are added
    again. The index is Qdrant: embedded (Qdrant Edge) under `<data_dir>/rag/index` (or
    `qdrant_path`), or a server at `qdrant_url` (the API key as the URL's password, or
    `qdrant_api_key`). File bytes go under `<data_dir>/rag/files` (or `files_dir`).

    `hybrid`: rank by dense vectors and BM25 keyword scores fused (reciprocal rank fusion);
    else by dense vectors alone. `workers`: files embedded at once; `queue`: jobs held in
    memory (more wait in the database, taken up once the queue has drained).
    `context_tokens`: the most tokens of retrieved passages a chat request gets."""

    enabled: bool = True
    scope: RagScope = "user"
    embedding_model: str = "local/all-minilm-l6-v2"
    embed_batch: int = Field(default=16, ge=1, le=2048)
    qdrant_url: SecretStr | None = None
    qdrant_api_key: SecretStr | None = None
    qdrant_path: str | None = None
    collection: str = Field(default="ai_gateway_rag", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    files_dir: str | None = None
    hybrid: bool = True
    workers: int = Field(default=1, ge=1, le=16)
    queue: int = Field(default=10_000, ge=1)
    context_tokens: int = Field(default=4_000, ge=1)
    max_num_results: int = Field(default=5, ge=1, le=50)
    auto_chunking: AutoChunking = Field(default_factory=AutoChunking)
    limits: RagLimits = Field(default_factory=RagLimits)
