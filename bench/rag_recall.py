"""RAG retrieval recall on a small labelled set: does search find the passage that answers?

The corpus (tests/data/rag/corpus/, the internal docs of a fictional company in Markdown, text,
Python, TypeScript, Go and HTML) goes through the gateway's own pipeline: `extract_text`,
`chunk_text` with a chunking strategy, the built-in local model (all-MiniLM-L6-v2, offline,
normalized vectors) and an embedded Qdrant Edge index in a temporary folder. Each question of
tests/data/rag/questions.jsonl (`question`, `file`, `answer`: a short verbatim substring of that
file, and `kind`: `keyword` when it names a rare identifier, `paraphrase` when it shares no rare
word with its answer) is embedded and searched, dense-only and hybrid (dense and BM25 fused).
A question is answered at k when one of the top k chunks comes from its file and contains its
answer.

    python -m bench.rag_recall                                  # 200/50, 300/75, 400/100, 800/400
    python -m bench.rag_recall --chunk-tokens 300 --overlap 75  # one strategy
    python -m bench.rag_recall --misses                         # and the questions missed

Prints recall@1/3/5 and MRR (over the top 5) for dense and hybrid per strategy, and by kind of
question. `evaluate()` returns the same numbers for a test (tests/integration/test_rag_recall.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from ai_gateway.rag.chunking import ChunkingStrategy, TokenEncoding, chunk_text, o200k
from ai_gateway.rag.extract import extract_text
from ai_gateway.rag.index import ChunkPoint
from ai_gateway.rag.index_edge import EdgeIndex

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "rag"
CORPUS = DATA / "corpus"
QUESTIONS = DATA / "questions.jsonl"
KS = (1, 3, 5)
MODES = ("dense", "hybrid")
DEFAULT_STRATEGIES = ((200, 50), (300, 75), (400, 100), (800, 400))
STORE = "vs_rag_recall"


class Embedder(Protocol):
    """What this needs of a SentenceTransformer."""

    def encode(self, sentences: list[str], **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class Question:
    question: str
    file: str
    answer: str
    kind: str


def load_model() -> Embedder:
    """The gateway's local embedding model, loaded as the gateway loads it (offline)."""
    from ai_gateway.providers.local import LOCAL_MODELS, _load_sentence_transformer

    model: Embedder = _load_sentence_transformer(LOCAL_MODELS["all-minilm-l6-v2"])
    return model


@cache
def _encoding() -> TokenEncoding:
    return o200k()


def load_corpus(corpus: Path = CORPUS) -> dict[str, str]:
    """Each file's name and its text, as the gateway extracts it."""
    return {
        path.name: extract_text(path.name, path.read_bytes())
        for path in sorted(corpus.iterdir())
        if path.is_file()
    }


def load_questions(docs: dict[str, str], questions: Path = QUESTIONS) -> list[Question]:
    """The labelled questions; ValueError when one names a file not in the corpus or an answer
    its file's extracted text does not hold (the test would then be unfair)."""
    found: list[Question] = []
    for number, line in enumerate(questions.read_text().splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        q = Question(row["question"], row["file"], row["answer"], row.get("kind", "other"))
        if q.file not in docs:
            raise ValueError(f"{questions.name}:{number}: no file {q.file!r} in the corpus")
        if q.answer not in docs[q.file]:
            raise ValueError(f"{questions.name}:{number}: {q.answer!r} is not in {q.file}")
        found.append(q)
    return found


def _embed(model: Embedder, texts: list[str]) -> list[list[float]]:
    vectors = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, batch_size=32)
    return [[float(x) for x in vector] for vector in vectors]


async def _rankings(
    points: list[ChunkPoint], questions: list[Question], vectors: list[list[float]], limit: int
) -> dict[str, list[list[tuple[str, str]]]]:
    """For each mode, each question's top `limit` hits as (filename, text)."""
    with tempfile.TemporaryDirectory(prefix="bench-rag-recall-") as folder:
        index = await EdgeIndex.open(folder)
        try:
            await index.upsert(points)
            found: dict[str, list[list[tuple[str, str]]]] = {}
            for mode in MODES:
                found[mode] = []
                for q, vector in zip(questions, vectors, strict=True):
                    hits = await index.search(
                        [STORE], vector, q.question, limit, hybrid=mode == "hybrid"
                    )
                    found[mode].append([(h.filename, h.text) for h in hits])
            return found
        finally:
            await index.aclose()


def _first_rank(q: Question, hits: list[tuple[str, str]]) -> int | None:
    """The rank (from 1) of the first hit that answers `q`."""
    for rank, (filename, text) in enumerate(hits, 1):
        if filename == q.file and q.answer in text:
            return rank
    return None


def _chance(chunks: int, answering: int, k: int) -> float:
    """The probability that k chunks drawn at random include one of `answering` chunks."""
    return 1 - math.comb(chunks - answering, k) / math.comb(chunks, k)


def _scores(ranks: list[int | None], ks: Sequence[int]) -> dict[str, float]:
    n = len(ranks) or 1
    scores = {f"recall@{k}": sum(r is not None and r <= k for r in ranks) / n for k in ks}
    scores["mrr"] = sum(1 / r for r in ranks if r is not None) / n
    return scores


def evaluate(
    chunk_tokens: int = 800,
    overlap_tokens: int = 400,
    *,
    model: Embedder | None = None,
    corpus: Path = CORPUS,
    questions: Path = QUESTIONS,
    ks: Sequence[int] = KS,
) -> dict[str, Any]:
    """Recall on the corpus chunked with this strategy, as a dict:

    - `chunks`, `questions`, `seconds`; `answerable`: the questions whose answer lies whole in
      some chunk of its file (the most any search can reach);
    - `chance`: `{"recall@k"}` of a ranking at random (few large chunks make recall@k easy);
    - `dense` and `hybrid`: `{"recall@k" for k in ks, "mrr" (ranks up to max(ks)), "by_kind":
      {kind: {"recall@k", "mrr"}}, "misses": [the questions not answered in the top max(ks)],
      "ranks": [each question's first answering rank, or None]}`.

    Loads the local model when `model` is not given (pass one to evaluate several strategies).
    """
    started = time.perf_counter()
    docs = load_corpus(corpus)
    labelled = load_questions(docs, questions)
    strategy = ChunkingStrategy(chunk_tokens, overlap_tokens)
    pieces = [
        (name, n, text)
        for name, doc in docs.items()
        for n, text in enumerate(chunk_text(doc, strategy, _encoding()))
    ]
    encoder = model if model is not None else load_model()
    chunk_vectors = _embed(encoder, [text for _, _, text in pieces])
    points = [
        ChunkPoint(STORE, f"file-{name}", name, n, text, vector)
        for (name, n, text), vector in zip(pieces, chunk_vectors, strict=True)
    ]
    answering = [
        sum(name == q.file and q.answer in text for name, _, text in pieces) for q in labelled
    ]
    question_vectors = _embed(encoder, [q.question for q in labelled])
    found = asyncio.run(_rankings(points, labelled, question_vectors, max(ks)))
    result: dict[str, Any] = {
        "chunk_tokens": chunk_tokens,
        "overlap_tokens": overlap_tokens,
        "chunks": len(points),
        "questions": len(labelled),
        # whose answer lies whole in some chunk of its file (the most recall can be)
        "answerable": sum(a > 0 for a in answering),
        # what a ranking at random would reach: few large chunks make a high recall@k easy
        "chance": {
            f"recall@{k}": sum(_chance(len(points), a, k) for a in answering) / len(labelled)
            for k in ks
        },
    }
    for mode in MODES:
        ranks = [_first_rank(q, hits) for q, hits in zip(labelled, found[mode], strict=True)]
        scores: dict[str, Any] = _scores(ranks, ks)
        kinds = sorted({q.kind for q in labelled})
        scores["by_kind"] = {
            kind: _scores([r for q, r in zip(labelled, ranks, strict=True) if q.kind == kind], ks)
            for kind in kinds
        }
        scores["misses"] = [q.question for q, r in zip(labelled, ranks, strict=True) if r is None]
        scores["ranks"] = ranks
        result[mode] = scores
    result["seconds"] = time.perf_counter() - started
    return result


def _row(label: str, scores: dict[str, float], ks: Sequence[int]) -> str:
    cells = "".join(f"{scores[f'recall@{k}']:>9.2f}" for k in ks)
    return f"  {label:22s}{cells}{scores['mrr']:>9.3f}"


def report(result: dict[str, Any], ks: Sequence[int] = KS, misses: bool = False) -> None:
    print(
        f"chunks {result['chunk_tokens']}/{result['overlap_tokens']} tokens: "
        f"{result['chunks']} chunks, {result['questions']} questions "
        f"({result['answerable']} answerable in one chunk; {result['seconds']:.1f} s)"
    )
    print(f"  {'':22s}" + "".join(f"{f'R@{k}':>9s}" for k in ks) + f"{'MRR':>9s}")
    chance = result["chance"]
    print(f"  {'chance':22s}" + "".join(f"{chance[f'recall@{k}']:>9.2f}" for k in ks))
    for mode in MODES:
        print(_row(mode, result[mode], ks))
        for kind, scores in result[mode]["by_kind"].items():
            print(_row(f"  {kind}", scores, ks))
    if misses:
        for mode in MODES:
            for question in result[mode]["misses"]:
                print(f"  missed ({mode}, top {max(ks)}): {question}")
    print()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--chunk-tokens",
        type=int,
        help="max tokens per chunk (default: compare 200/50, 300/75, 400/100 and 800/400)",
    )
    parser.add_argument("--overlap", type=int, help="overlap tokens (default: a quarter)")
    parser.add_argument("--misses", action="store_true", help="print the questions missed")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.chunk_tokens is not None:
        overlap = args.overlap if args.overlap is not None else args.chunk_tokens // 4
        strategies: Sequence[tuple[int, int]] = [(args.chunk_tokens, overlap)]
    elif args.overlap is not None:
        parser.error("--overlap needs --chunk-tokens")
    else:
        strategies = DEFAULT_STRATEGIES
    model = load_model()
    results = [evaluate(size, overlap, model=model) for size, overlap in strategies]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for result in results:
        report(result, misses=args.misses)


if __name__ == "__main__":
    main()
