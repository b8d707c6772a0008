"""How fast the RAG vector index searches (issue: "search p50 on 10,000 chunks, embedded, query
embedding excluded, under 10 ms").

Builds one vector store of `--points` chunks (about 400 words each, drawn with Zipf's law from
the words of this repository's docs/, so BM25 sees a realistic vocabulary; random unit dense
vectors of `--size` dimensions, as the default local embedding model's 384) in:

- **edge**: EdgeIndex, embedded Qdrant Edge (the default backend), in a temporary folder;
- **local**: QdrantIndex over qdrant-client's local mode (`AsyncQdrantClient(path=...)`), which
  emulates a Qdrant server in Python: far slower, so measured on `--local-points` chunks and
  `--local-queries` queries.

Chunks go in batches of 64 (the default `rag.embed_batch`); the upsert rate counts BM25
embedding, writing and flushing. Each query's vector is a chunk's vector with noise, its text
five words of that chunk; every search filters on the store, as the gateway's do. Prints p50 and
p95 of dense and hybrid searches (5 results), one search at a time, after a warm-up.

    python -m bench.rag_index
    python -m bench.rag_index --optimize --local-points 0          # Edge, then optimized
    python -m bench.rag_index --points 50000 --local-points 0     # Edge only, larger
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import re
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from qdrant_client import AsyncQdrantClient

from ai_gateway.rag.index import ChunkPoint, VectorIndex
from ai_gateway.rag.index_edge import EdgeIndex
from ai_gateway.rag.index_qdrant import QdrantIndex

STORE = "vs_bench"
BATCH = 64
WORDS_PER_CHUNK = 400
DOCS = Path(__file__).resolve().parent.parent / "docs"


def vocabulary() -> list[str]:
    """The words of docs/*.md, most frequent first."""
    counts: Counter[str] = Counter()
    for doc in sorted(DOCS.glob("*.md")):
        counts.update(re.findall(r"[a-z]{2,}", doc.read_text(encoding="utf-8").lower()))
    return [word for word, _ in counts.most_common()]


def unit_vector(rng: random.Random, size: int) -> list[float]:
    vector = [rng.gauss(0.0, 1.0) for _ in range(size)]
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector]


def make_chunks(count: int, size: int, seed: int) -> list[ChunkPoint]:
    rng = random.Random(seed)
    words = vocabulary()
    weights = [1.0 / (rank + 1) for rank in range(len(words))]  # Zipf
    chunks = []
    for n in range(count):
        text = " ".join(rng.choices(words, weights, k=WORDS_PER_CHUNK))
        file_id = f"file-{n // 20:05d}"  # 20 chunks a file
        attributes: dict[str, str | float | bool] = {"part": float(n % 7)}
        chunks.append(
            ChunkPoint(
                STORE, file_id, f"{file_id}.txt", n % 20, text, unit_vector(rng, size), attributes
            )
        )
    return chunks


def make_queries(
    chunks: Sequence[ChunkPoint], count: int, seed: int
) -> list[tuple[list[float], str]]:
    rng = random.Random(seed)
    queries = []
    for _ in range(count):
        target = rng.choice(chunks)
        noisy = [x + rng.gauss(0.0, 0.05) for x in target.vector]
        norm = math.sqrt(sum(x * x for x in noisy))
        text = " ".join(rng.sample(target.text.split(), 5))
        queries.append(([x / norm for x in noisy], text))
    return queries


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def fill(index: VectorIndex, chunks: Sequence[ChunkPoint]) -> float:
    """Upsert the chunks in batches; chunks per second."""
    started = time.perf_counter()
    for start in range(0, len(chunks), BATCH):
        await index.upsert(chunks[start : start + BATCH])
    return len(chunks) / (time.perf_counter() - started)


async def timings(
    index: VectorIndex, queries: Sequence[tuple[list[float], str]], hybrid: bool
) -> list[float]:
    took = []
    for n, (vector, text) in enumerate(queries):
        started = time.perf_counter()
        hits = await index.search([STORE], vector, text, 5, hybrid=hybrid)
        elapsed = time.perf_counter() - started
        if not hits:
            raise RuntimeError("a search found nothing")
        if n >= min(10, len(queries) // 5):  # warm-up
            took.append(elapsed)
    return took


async def measure(name: str, index: VectorIndex, chunks: list[ChunkPoint], queries: int) -> None:
    rate = await fill(index, chunks)
    print(f"{name}: {len(chunks):,} chunks; upsert {rate:,.0f} chunks/s")
    await searches(index, make_queries(chunks, queries, seed=2))


async def searches(index: VectorIndex, asked: Sequence[tuple[list[float], str]]) -> None:
    for hybrid in (False, True):
        took = await timings(index, asked, hybrid)
        kind = "hybrid" if hybrid else "dense"
        print(
            f"  {kind:6s} search p50 {percentile(took, 0.5) * 1000:8.2f} ms"
            f"   p95 {percentile(took, 0.95) * 1000:8.2f} ms   ({len(took)} searches)"
        )


async def main_async(args: argparse.Namespace) -> None:
    chunks = make_chunks(max(args.points, args.local_points), args.size, seed=1)
    with tempfile.TemporaryDirectory(prefix="bench-rag-index-") as tmp:
        if args.points:
            edge = await EdgeIndex.open(str(Path(tmp) / "edge"))
            try:
                await measure("edge (Qdrant Edge)", edge, chunks[: args.points], args.queries)
                if args.optimize:
                    started = time.perf_counter()
                    await edge.optimize()
                    took = time.perf_counter() - started
                    print(f"edge after optimize() ({took:.1f} s, the process stopped meanwhile):")
                    await searches(edge, make_queries(chunks[: args.points], args.queries, seed=3))
            finally:
                await edge.aclose()
        if args.local_points:
            client = AsyncQdrantClient(path=str(Path(tmp) / "local"))
            local = QdrantIndex("bench", client=client)
            try:
                await measure(
                    "local (qdrant-client local mode)",
                    local,
                    chunks[: args.local_points],
                    args.local_queries,
                )
            finally:
                await local.aclose()
    print(f"vectors: {args.size} dimensions; {WORDS_PER_CHUNK} words a chunk; 5 results a search")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=10_000, help="chunks in Edge (0: skip)")
    parser.add_argument("--queries", type=int, default=300, help="searches of each kind, Edge")
    parser.add_argument(
        "--optimize", action="store_true", help="then optimize Edge's shard and search again"
    )
    parser.add_argument("--size", type=int, default=384, help="dense vector dimensions")
    parser.add_argument(
        "--local-points", type=int, default=2_000, help="chunks in local mode (0: skip)"
    )
    parser.add_argument("--local-queries", type=int, default=30, help="searches, local mode")
    asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
