"""How fast the gateway ingests files into a vector store, as a client sees it: from "files
added to a vector store" to "status completed", with the built-in local embedding model.

Starts `ai-gateway serve --workers 1` on 127.0.0.1 with its embedded defaults (a fresh
`AI_GATEWAY_DATA_DIR` in a temporary folder: SQLite, Qdrant Edge, the file bytes; no config
file, no master key, demo mode off) and drives it with the official `openai` SDK:

1. warm-up: one small file ingested into a store of its own, so the model, the tokenizer and
   the index are loaded before any clock starts;
2. per round, a corpus of `--files` Markdown and text files of about `--words` words each
   (paragraphs, lists and code blocks of this repository's docs/, shuffled with `--seed` and
   the round), uploaded with `files.create(purpose="assistants")` (timed apart);
3. a new vector store, then all the files in one `vector_stores.file_batches.create(...)`
   (with `--chunk-tokens`/`--overlap` as a static `chunking_strategy`, else `auto`: 800/400);
   the clock starts just before that request and stops at the first poll of
   `GET /v1/vector_stores/{id}` (every `--poll` seconds) whose `file_counts` has none in
   progress. Every file must be `completed`.

Chunks are counted here, not read from the API (a `vector_store.file` shows no chunk count):
`chunk_text` with the same strategy and the o200k encoding on each file's text as the gateway
extracts it. The count is checked against the store's `usage_bytes`, which the gateway sets to
the chunks' UTF-8 bytes plus 4 bytes per vector dimension per chunk.

After the gateway has stopped, the same chunks are embedded in this process by the model loaded
as `ai_gateway.providers.local` loads it (same torch threads: CPUs - 1; same encode call, which
also tokenizes for the usage count), after one warm-up batch, twice: "model64", in flat batches
of 64 (`rag.embed_batch`); "per-file", each file's chunks in one call (in slices of 64), which
is how the ingestor calls the model with `rag.workers: 1` (smaller batches, which this CPU runs
faster per chunk). "model %" is the per-file time over the ingestion time: the part that is the
model alone; the rest is chunking, the index (Edge upserts, BM25), the database and hand-offs.

    python -m bench.rag_ingest                                  # 40 files of ~2,000 words
    python -m bench.rag_ingest --chunk-tokens 256 --overlap 64  # a static strategy
    python -m bench.rag_ingest --files 100 --words 1000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openai import OpenAI

from ai_gateway.rag.chunking import AUTO, ChunkingStrategy, TokenEncoding, chunk_text, o200k
from ai_gateway.rag.extract import extract_text
from bench.procs import Server, StartError, free_port, running

DOCS = Path(__file__).resolve().parent.parent / "docs"
MODEL = "all-minilm-l6-v2"  # rag.embedding_model's default, local/all-minilm-l6-v2
DIMENSIONS = 384
EMBED_BATCH = 64  # rag.embed_batch's default
TITLES = (
    "Operations notes",
    "Design review",
    "Runbook",
    "Configuration guide",
    "Incident report",
    "Architecture notes",
    "FAQ",
    "Release notes",
)

Encoder = Callable[[list[str]], tuple[list[list[float]], list[int]]]


@dataclass(frozen=True)
class Document:
    name: str
    data: bytes


@dataclass
class Round:
    files: int
    words: int
    chunks: int
    upload_s: float
    ingest_s: float
    chunking_s: float
    usage_ok: bool
    model_s: float = 0.0  # flat batches of 64
    file_model_s: float = 0.0  # each file's chunks in batches of 64, as the ingestor embeds

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.ingest_s

    @property
    def files_per_s(self) -> float:
        return self.files / self.ingest_s

    @property
    def model_chunks_per_s(self) -> float:
        return self.chunks / self.model_s if self.model_s else 0.0

    @property
    def file_model_chunks_per_s(self) -> float:
        return self.chunks / self.file_model_s if self.file_model_s else 0.0

    @property
    def model_share(self) -> float:
        return self.file_model_s / self.ingest_s


# The corpus.


def blocks() -> list[str]:
    """The paragraphs, lists, tables and fenced code blocks of docs/*.md (headings dropped)."""
    found: list[str] = []
    for doc in sorted(DOCS.glob("*.md")):
        current: list[str] = []
        fenced = False
        for line in doc.read_text(encoding="utf-8").splitlines():
            if line.startswith("```"):
                fenced = not fenced
            if not fenced and not line.strip():
                if current:
                    found.append("\n".join(current))
                current = []
            elif fenced or not line.startswith("#"):
                current.append(line)
        if current:
            found.append("\n".join(current))
    return [b for b in found if len(b.split()) >= 5]


def make_corpus(count: int, words: int, seed: int, pool: Sequence[str]) -> list[Document]:
    """`count` files of about `words` words: a title, then blocks drawn at random, with a
    section heading every few blocks; Markdown and plain text alternately."""
    rng = random.Random(seed)
    documents = []
    for n in range(count):
        title = f"{rng.choice(TITLES)} {n + 1}"
        parts = [f"# {title}"]
        total = 0
        section = 0
        while total < words:
            if len(parts) == 1 or rng.random() < 0.15:
                section += 1
                parts.append(f"## {section}. {' '.join(rng.choice(pool).split()[:4])}")
            block = rng.choice(pool)
            parts.append(block)
            total += len(block.split())
        suffix = "md" if n % 2 == 0 else "txt"
        text = "\n\n".join(parts) + "\n"
        documents.append(Document(f"{title.lower().replace(' ', '-')}.{suffix}", text.encode()))
    return documents


def chunked(
    documents: Sequence[Document], strategy: ChunkingStrategy, encoding: TokenEncoding
) -> list[list[str]]:
    """Each document's chunks, as the gateway cuts them."""
    return [chunk_text(extract_text(d.name, d.data), strategy, encoding) for d in documents]


def usage_bytes(chunks: Sequence[str]) -> int:
    """A file's usage_bytes as the gateway counts it: its chunks' bytes and their vectors'."""
    return sum(len(c.encode()) for c in chunks) + 4 * DIMENSIONS * len(chunks)


# The gateway.


def gateway_env(data_dir: Path) -> dict[str, str]:
    """This environment without AI_GATEWAY_* settings, with a fresh data folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AI_GATEWAY_")}
    env["AI_GATEWAY_DATA_DIR"] = str(data_dir)
    env["AI_GATEWAY_DEMO"] = "false"
    return env


def gateway_argv(port: int) -> list[str]:
    beside = Path(sys.executable).with_name("ai-gateway")
    head = [str(beside)] if beside.exists() else [sys.executable, "-m", "ai_gateway"]
    return [*head, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]


def upload(client: OpenAI, documents: Sequence[Document]) -> tuple[list[str], float]:
    started = time.perf_counter()
    ids = [
        client.files.create(file=(doc.name, doc.data), purpose="assistants").id for doc in documents
    ]
    return ids, time.perf_counter() - started


def ingest(
    client: OpenAI, file_ids: list[str], chunking: dict[str, Any] | None, poll: float
) -> tuple[float, str, int]:
    """Seconds from the batch's request to a store with no file in progress, the store's id
    and its usage_bytes. Raises if a file did not complete."""
    store = client.vector_stores.create(name="bench-rag-ingest")
    extra: dict[str, Any] = {"chunking_strategy": chunking} if chunking else {}
    started = time.perf_counter()
    client.vector_stores.file_batches.create(store.id, file_ids=file_ids, **extra)
    while True:
        view = client.vector_stores.retrieve(store.id)
        if view.file_counts.in_progress == 0:
            took = time.perf_counter() - started
            break
        time.sleep(poll)
    counts = view.file_counts
    if counts.completed != len(file_ids):
        failed = client.vector_stores.files.list(store.id, filter="failed", limit=1).data
        reason = failed[0].last_error if failed else None
        raise RuntimeError(f"not all files completed: {counts}; first failure: {reason}")
    return took, store.id, view.usage_bytes


def usage_by_file(client: OpenAI, store_id: str) -> dict[str, int]:
    """Each file's usage_bytes in the store."""
    return {f.id: f.usage_bytes for f in client.vector_stores.files.list(store_id, limit=100)}


# The model alone.


def load_encoder() -> Encoder:
    """The local model's encode function, exactly as the gateway builds it."""
    from ai_gateway.providers.local import LOCAL_MODELS, _sentence_transformer_encoder

    encoder: Encoder = _sentence_transformer_encoder(LOCAL_MODELS[MODEL])()
    return encoder


def max_seq_length() -> int:
    """The model's input limit in its own tokens (it truncates the rest of a chunk)."""
    from importlib.resources import files

    from ai_gateway.providers.local import LOCAL_MODELS

    config = files(LOCAL_MODELS[MODEL].package).joinpath("model/sentence_bert_config.json")
    limit: int = json.loads(config.read_text())["max_seq_length"]
    return limit


def embed_seconds(encode: Encoder, batches: Sequence[Sequence[str]]) -> tuple[float, list[int]]:
    """Seconds to embed each of `batches` (in slices of 64), and each chunk's model tokens
    (as truncated)."""
    tokens: list[int] = []
    started = time.perf_counter()
    for chunks in batches:
        for start in range(0, len(chunks), EMBED_BATCH):
            tokens += encode(list(chunks[start : start + EMBED_BATCH]))[1]
    return time.perf_counter() - started, tokens


def measure_model(rounds: Sequence[Round], texts: Sequence[Sequence[list[str]]]) -> list[int]:
    """Fill in each round's model seconds; each chunk's model tokens."""
    encode = load_encoder()
    encode(texts[0][0][:EMBED_BATCH])  # warm-up
    seen: list[int] = []
    for r, per_file in zip(rounds, texts, strict=True):
        r.model_s, tokens = embed_seconds(encode, [[c for chunks in per_file for c in chunks]])
        r.file_model_s, _ = embed_seconds(encode, per_file)
        seen += tokens
    return seen


# The run.


def strategy_of(args: argparse.Namespace) -> tuple[ChunkingStrategy, dict[str, Any] | None]:
    if args.chunk_tokens is None:
        return AUTO, None
    strategy = ChunkingStrategy(args.chunk_tokens, args.overlap)
    return strategy, strategy.view()


def measure_rounds(
    server: Server,
    args: argparse.Namespace,
    pool: Sequence[str],
    encoding: TokenEncoding,
) -> tuple[list[Round], list[list[list[str]]]]:
    strategy, chunking = strategy_of(args)
    client = OpenAI(
        base_url=f"{server.base_url}/v1", api_key="sk-bench-unused", max_retries=0, timeout=120
    )
    print("warm-up: one small file (loads the model, the tokenizer and the index) ...", flush=True)
    warm = make_corpus(1, 300, args.seed - 1, pool)
    ids, _ = upload(client, warm)
    took, _, _ = ingest(client, ids, chunking, args.poll)
    print(f"warm-up took {took:.1f} s", flush=True)
    rounds: list[Round] = []
    texts: list[list[list[str]]] = []
    for n in range(args.repeat):
        documents = make_corpus(args.files, args.words, args.seed + n, pool)
        started = time.perf_counter()
        per_file = chunked(documents, strategy, encoding)
        chunking_s = time.perf_counter() - started
        ids, upload_s = upload(client, documents)
        print(f"round {n + 1}: {len(ids)} files uploaded, ingesting ...", flush=True)
        ingest_s, store_id, total = ingest(client, ids, chunking, args.poll)
        usage = usage_by_file(client, store_id)
        if total != sum(usage.values()):
            print(f"  the store's usage_bytes {total} != {sum(usage.values())}, its files' sum")
        wrong = [
            f"{doc.name}: {usage.get(file_id)} != {usage_bytes(chunks)}"
            for doc, file_id, chunks in zip(documents, ids, per_file, strict=True)
            if usage.get(file_id) != usage_bytes(chunks)
        ]
        if wrong:
            print(f"  usage_bytes differs from the chunks counted here: {wrong[:5]}", flush=True)
        chunks = sum(len(c) for c in per_file)
        words = sum(len(d.data.decode().split()) for d in documents)
        rounds.append(
            Round(
                len(ids),
                words,
                chunks,
                upload_s,
                ingest_s,
                chunking_s,
                not wrong and total == sum(usage.values()),
            )
        )
        texts.append(per_file)
    return rounds, texts


def render(rounds: Sequence[Round]) -> str:
    header = (
        f"{'round':>6} {'files':>6} {'words':>8} {'chunks':>7} {'upload s':>9} {'ingest s':>9}"
        f" {'chunks/s':>9} {'files/s':>8} {'model64 s':>10} {'ch/s':>6} {'per-file s':>11}"
        f" {'ch/s':>6} {'model %':>8}"
    )
    lines = [header, "-" * len(header)]

    def row(label: str, r: Round) -> str:
        return (
            f"{label:>6} {r.files:>6} {r.words:>8,} {r.chunks:>7,} {r.upload_s:>9.2f}"
            f" {r.ingest_s:>9.2f} {r.chunks_per_s:>9.1f} {r.files_per_s:>8.2f}"
            f" {r.model_s:>10.2f} {r.model_chunks_per_s:>6.1f} {r.file_model_s:>11.2f}"
            f" {r.file_model_chunks_per_s:>6.1f} {r.model_share:>8.0%}"
        )

    for n, r in enumerate(rounds, 1):
        lines.append(row(str(n), r))
    if len(rounds) > 1:
        med = Round(
            files=round(statistics.median(r.files for r in rounds)),
            words=round(statistics.median(r.words for r in rounds)),
            chunks=round(statistics.median(r.chunks for r in rounds)),
            upload_s=statistics.median(r.upload_s for r in rounds),
            ingest_s=statistics.median(r.ingest_s for r in rounds),
            chunking_s=statistics.median(r.chunking_s for r in rounds),
            usage_ok=all(r.usage_ok for r in rounds),
            model_s=statistics.median(r.model_s for r in rounds),
            file_model_s=statistics.median(r.file_model_s for r in rounds),
        )
        lines.append(row("median", med))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> None:
    strategy, _ = strategy_of(args)
    pool = blocks()
    encoding = o200k()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-rag-ingest-")))
        port = free_port()
        with running(
            "gateway",
            gateway_argv(port),
            port=port,
            log_dir=tmp,
            ready_timeout=args.ready_timeout,
            env=gateway_env(tmp / "data"),
        ) as server:
            print(f"gateway on {server.base_url} (data in {tmp})", flush=True)
            try:
                rounds, texts = measure_rounds(server, args, pool, encoding)
            except Exception:
                print(f"gateway log (tail):\n{server.log_tail()}", file=sys.stderr)
                raise
        print("gateway stopped; embedding the same chunks in this process ...", flush=True)
        seen = measure_model(rounds, texts)
    kind = "auto" if args.chunk_tokens is None else "static"
    print()
    print(
        f"chunking: {kind} {strategy.max_tokens}/{strategy.overlap_tokens} tokens (o200k);"
        f" model local/{MODEL} on {os.cpu_count()} CPUs; embed batch {EMBED_BATCH};"
        f" poll every {args.poll * 1000:.0f} ms"
    )
    print(render(rounds))
    chunking_s = statistics.median(r.chunking_s for r in rounds)
    print(
        f"chunks: counted with chunk_text here ({chunking_s:.2f} s of chunking in this process);"
        f" store usage_bytes {'agrees' if all(r.usage_ok for r in rounds) else 'DISAGREES'}"
    )
    limit = max_seq_length()
    cut = sum(t >= limit for t in seen) / len(seen)
    print(
        "the same chunks embedded in this process after the gateway stopped: model64 in flat"
        " batches of 64; per-file one file's chunks a call (slices of 64), as the ingestor"
        " embeds them; model % = per-file s / ingest s"
    )
    print(
        f"the model reads {statistics.mean(seen):.0f} of its tokens a chunk on average"
        f" (it truncates at {limit}: {cut:.0%} of the chunks)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=40, help="files per round")
    parser.add_argument("--words", type=int, default=2_000, help="words per file, about")
    parser.add_argument(
        "--chunk-tokens", type=int, default=None, help="static strategy (default: auto, 800)"
    )
    parser.add_argument("--overlap", type=int, default=None, help="with --chunk-tokens")
    parser.add_argument("--repeat", type=int, default=1, help="rounds, each a new corpus")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--poll", type=float, default=0.05, help="seconds between polls")
    parser.add_argument("--ready-timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    if args.chunk_tokens is not None:
        if args.overlap is None:
            args.overlap = args.chunk_tokens // 4
        if not 100 <= args.chunk_tokens <= 4096 or not 0 <= 2 * args.overlap <= args.chunk_tokens:
            parser.error("need 100 <= --chunk-tokens <= 4096 and 0 <= 2 * --overlap <= it")
    elif args.overlap is not None:
        parser.error("--overlap goes with --chunk-tokens")
    if args.files < 1 or args.words < 1 or args.repeat < 1 or args.poll <= 0:
        parser.error("need --files, --words, --repeat >= 1 and --poll > 0")
    try:
        run(args)
    except StartError as exc:
        raise SystemExit(f"the gateway did not start: {exc}") from None


if __name__ == "__main__":
    main()
