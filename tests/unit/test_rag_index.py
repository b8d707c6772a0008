"""The RAG vector index, on both backends: Qdrant Edge in a temporary folder, and QdrantIndex in
front of qdrant-client's local mode, in process and over HTTP through the project's Qdrant
server emulator (what a server URL runs: the client's REST requests and their answers)."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter
from qdrant_client import AsyncQdrantClient

from ai_gateway.emulator.qdrant import start as start_qdrant
from ai_gateway.rag.filters import AttributeFilter
from ai_gateway.rag.index import ChunkPoint, VectorIndex
from ai_gateway.rag.index_common import InvalidFilterError
from ai_gateway.rag.index_edge import EdgeIndex, IndexFolderInUseError
from ai_gateway.rag.index_qdrant import QdrantIndex
from ai_gateway.rag.records import AttributeValue

SIZE = 8


def unit(*values: float) -> list[float]:
    vector = [*values, *([0.0] * (SIZE - len(values)))]
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector]


def axis(i: int, lean: float = 0.0) -> list[float]:
    """Close to axis `i`, leaning towards axis 7 by `lean`."""
    vector = [0.0] * SIZE
    vector[i] = 1.0
    vector[7] += lean
    return unit(*vector)


def chunk(
    store: str,
    file: str,
    n: int,
    text: str,
    vector: list[float],
    attributes: dict[str, AttributeValue] | None = None,
) -> ChunkPoint:
    return ChunkPoint(store, file, f"{file}.txt", n, text, vector, attributes or {})


@pytest.fixture(params=["edge", "qdrant", "qdrant-rest"])
async def index(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[VectorIndex]:
    made: VectorIndex
    server = None
    if request.param == "edge":
        made = await EdgeIndex.open(str(tmp_path / "index"))
    elif request.param == "qdrant":
        made = QdrantIndex("rag", client=AsyncQdrantClient(location=":memory:"))
    else:
        server, port = await start_qdrant()
        made = QdrantIndex("rag", url=f"http://127.0.0.1:{port}")
    yield made
    await made.aclose()
    if server is not None:
        await server.cleanup()


def ids(hits: list[Any]) -> list[tuple[str, int]]:
    return [(h.file_id, h.chunk) for h in hits]


async def test_search_returns_the_closest_chunk_with_its_cosine(index: VectorIndex) -> None:
    await index.upsert(
        [
            chunk("vs_a", "f1", 0, "apples grow on trees", axis(0), {"lang": "en"}),
            chunk("vs_a", "f1", 1, "pears are sweet", axis(1)),
            chunk("vs_a", "f2", 0, "plums are purple", axis(2)),
        ]
    )
    query = axis(1, lean=0.5)
    for hybrid in (True, False):
        hits = await index.search(["vs_a"], query, "sweet pears", 3, hybrid=hybrid)
        assert ids(hits)[0] == ("f1", 1)
        best = hits[0]
        assert best.text == "pears are sweet"
        assert best.filename == "f1.txt"
        assert best.store_id == "vs_a"
        assert best.score == pytest.approx(1 / math.sqrt(1.25), abs=1e-4)
        assert all(0.0 <= h.score <= 1.0 for h in hits)
    hits = await index.search(["vs_a"], axis(0), "", 1)
    assert hits[0].attributes == {"lang": "en"}


async def test_a_search_never_returns_another_stores_chunks(index: VectorIndex) -> None:
    await index.upsert(
        [
            chunk("vs_a", "f1", 0, "the secret plan of store a", axis(0)),
            chunk("vs_b", "f2", 0, "the secret plan of store b", axis(0)),
        ]
    )
    for hybrid in (True, False):
        hits = await index.search(["vs_a"], axis(0), "secret plan", 10, hybrid=hybrid)
        assert [h.store_id for h in hits] == ["vs_a"]
        both = await index.search(["vs_a", "vs_b"], axis(0), "secret plan", 10, hybrid=hybrid)
        assert sorted(h.store_id for h in both) == ["vs_a", "vs_b"]
    assert await index.search(["vs_c"], axis(0), "secret plan", 10) == []
    assert await index.search([], axis(0), "secret plan", 10) == []


ATTRIBUTES: list[dict[str, AttributeValue]] = [
    {"author": "jane", "year": 2020, "draft": True, "a.b c": "x"},
    {"author": "john", "year": 2021, "draft": False},
    {"author": "jane", "year": 2022.5},
    {"year": 2019},
    {"author": "ann", "draft": True},
]


def eq(key: str, value: Any, kind: str = "eq") -> dict[str, Any]:
    return {"type": kind, "key": key, "value": value}


FILTERS: list[tuple[dict[str, Any], set[int]]] = [
    (eq("author", "jane"), {0, 2}),
    (eq("year", 2021), {1}),
    (eq("year", 2021.0), {1}),
    (eq("draft", True), {0, 4}),
    (eq("draft", False), {1}),
    (eq("a.b c", "x"), {0}),
    (eq("author", "jane", "ne"), {1, 3, 4}),  # a chunk without the attribute is not equal
    (eq("draft", True, "ne"), {1, 2, 3}),
    (eq("year", 2020, "ne"), {1, 2, 3, 4}),
    (eq("year", 2020, "gt"), {1, 2}),
    (eq("year", 2020, "gte"), {0, 1, 2}),
    (eq("year", 2021, "lt"), {0, 3}),
    (eq("year", 2021, "lte"), {0, 1, 3}),
    (eq("author", ["jane", "ann"], "in"), {0, 2, 4}),
    (eq("year", [2019, 2022.5], "in"), {2, 3}),
    (eq("draft", [False], "in"), {1}),
    (eq("author", ["john", 2019, True], "in"), {1}),
    (eq("author", "john", "in"), {1}),
    (eq("author", [], "in"), set()),
    (eq("author", ["jane", "ann"], "nin"), {1, 3}),
    (eq("year", [2019, 2020], "nin"), {1, 2, 4}),
    ({"type": "and", "filters": [eq("author", "jane"), eq("year", 2021, "gt")]}, {2}),
    (
        {
            "type": "or",
            "filters": [
                eq("author", "ann"),
                {"type": "and", "filters": [eq("author", "jane"), eq("year", 2021, "lt")]},
            ],
        },
        {0, 4},
    ),
    (
        {
            "type": "and",
            "filters": [
                {"type": "or", "filters": [eq("draft", True), eq("year", 2022, "gte")]},
                eq("author", "ann", "ne"),
            ],
        },
        {0, 2},
    ),
]


@pytest.mark.parametrize(("spec", "expected"), FILTERS, ids=[str(f[0]) for f in FILTERS])
async def test_filters(index: VectorIndex, spec: dict[str, Any], expected: set[int]) -> None:
    await index.upsert(
        [
            chunk("vs_a", "f", n, f"chunk {n}", axis(n % 4), attributes)
            for n, attributes in enumerate(ATTRIBUTES)
        ]
        + [chunk("vs_b", "g", 0, "chunk", axis(0), ATTRIBUTES[0])]
    )
    where: AttributeFilter = TypeAdapter(AttributeFilter).validate_python(spec)
    for hybrid in (True, False):
        hits = await index.search(["vs_a"], axis(0), "chunk", 10, filters=where, hybrid=hybrid)
        assert {h.chunk for h in hits} == expected
        assert {h.store_id for h in hits} <= {"vs_a"}


@pytest.mark.parametrize(
    "spec",
    [eq("author", "jane", "gt"), eq("draft", True, "lte"), eq("author", ["a"], "eq")],
)
async def test_a_filter_that_cannot_apply_is_refused(
    index: VectorIndex, spec: dict[str, Any]
) -> None:
    await index.upsert([chunk("vs_a", "f", 0, "text", axis(0))])
    where: AttributeFilter = TypeAdapter(AttributeFilter).validate_python(spec)
    with pytest.raises(InvalidFilterError):
        await index.search(["vs_a"], axis(0), "text", 5, filters=where)


async def test_adding_the_same_chunks_again_replaces_them(index: VectorIndex) -> None:
    points = [chunk("vs_a", "f", n, f"version one {n}", axis(n)) for n in range(3)]
    await index.upsert(points)
    await index.upsert([chunk("vs_a", "f", n, f"version two {n}", axis(n)) for n in range(3)])
    assert await index.count("vs_a") == 3
    hits = await index.search(["vs_a"], axis(0), "version", 10)
    assert len(hits) == 3
    assert all(h.text.startswith("version two") for h in hits)


async def test_set_attributes_replaces_a_files_attributes(
    index: EdgeIndex | QdrantIndex,
) -> None:
    await index.upsert(
        [chunk("vs_a", "f", n, "text", axis(n), {"old": "yes", "draft": True}) for n in range(2)]
        + [chunk("vs_a", "g", 0, "text", axis(0), {"old": "yes", "draft": True})]
        + [chunk("vs_b", "f", 0, "text", axis(0), {"old": "yes", "draft": True})]
    )
    await index.set_attributes("vs_a", "f", {"new": 2.0, "draft": False})

    async def found(spec: dict[str, Any]) -> set[tuple[str, str]]:
        where: AttributeFilter = TypeAdapter(AttributeFilter).validate_python(spec)
        hits = await index.search(["vs_a", "vs_b"], axis(0), "text", 10, filters=where)
        return {(h.store_id, h.file_id) for h in hits}

    assert await found(eq("old", "yes")) == {("vs_a", "g"), ("vs_b", "f")}
    assert await found(eq("draft", True)) == {("vs_a", "g"), ("vs_b", "f")}
    assert await found(eq("draft", False)) == {("vs_a", "f")}
    assert await found(eq("new", 2)) == {("vs_a", "f")}
    hits = await index.search(["vs_a"], axis(1), "", 1)
    assert hits[0].attributes == {"new": 2.0, "draft": False}


async def test_delete_file_store_and_count(index: VectorIndex) -> None:
    await index.upsert(
        [chunk("vs_a", "f1", n, "one", axis(n)) for n in range(3)]
        + [chunk("vs_a", "f2", n, "two", axis(n)) for n in range(2)]
        + [chunk("vs_b", "f1", 0, "one", axis(0))]
        + [chunk("vs_a", "f3", 0, "small", [1.0, 0.0, 0.0, 0.0])]  # another vector size
    )
    assert await index.count("vs_a") == 6
    assert await index.count("vs_b") == 1
    assert await index.count("vs_c") == 0
    await index.delete_file("vs_a", "f1")
    assert await index.count("vs_a") == 3
    assert await index.count("vs_b") == 1  # the same file in another store stays
    hits = await index.search(["vs_a"], axis(0), "one two", 10)
    assert {h.file_id for h in hits} == {"f2"}
    small = await index.search(["vs_a"], [1.0, 0.0, 0.0, 0.0], "small", 10)
    assert ids(small) == [("f3", 0)]
    await index.delete_store("vs_a")
    assert await index.count("vs_a") == 0
    assert await index.search(["vs_a"], axis(0), "one two", 10) == []
    assert await index.count("vs_b") == 1


async def test_hybrid_finds_a_rare_keyword_the_dense_ranking_misses(index: VectorIndex) -> None:
    decoys = [
        chunk("vs_a", "doc", n, f"general notes about deployment number {n}", axis(0, n / 10))
        for n in range(6)
    ]
    needle = chunk("vs_a", "err", 0, "error code XK7734 means the disk is full", axis(3))
    await index.upsert([*decoys, needle])
    query = axis(0)  # misleading: close to the decoys
    dense = await index.search(["vs_a"], query, "XK7734", 2, hybrid=False)
    assert ("err", 0) not in ids(dense)
    hybrid = await index.search(["vs_a"], query, "XK7734", 2, hybrid=True)
    assert ids(hybrid)[0] == ("err", 0)
    assert hybrid[0].score == pytest.approx(0.0, abs=1e-6)  # its cosine, not its fused rank


async def test_score_threshold_leaves_out_chunks_below_it(index: VectorIndex) -> None:
    await index.upsert(
        [
            chunk("vs_a", "f", 0, "close to the query", axis(0, 0.1)),
            chunk("vs_a", "f", 1, "halfway there", axis(0, 1.0)),
            chunk("vs_a", "f", 2, "far away but has the keyword zebra", axis(5)),
        ]
    )
    for hybrid in (True, False):
        hits = await index.search(["vs_a"], axis(0), "zebra", 3, hybrid=hybrid, score_threshold=0.9)
        assert ids(hits) == [("f", 0)]
        assert hits[0].score >= 0.9
        everything = await index.search(
            ["vs_a"], axis(0), "zebra", 3, hybrid=hybrid, score_threshold=0.0
        )
        assert len(everything) == 3
    # Hits below the threshold leave room for the next ones: two asked, two above it.
    hits = await index.search(["vs_a"], axis(0), "zebra", 2, hybrid=True, score_threshold=0.5)
    assert ids(hits) == [("f", 0), ("f", 1)]


async def test_edge_index_keeps_its_chunks_when_reopened(tmp_path: Path) -> None:
    path = str(tmp_path / "index")
    index = await EdgeIndex.open(path)
    await index.upsert([chunk("vs_a", "f", n, f"kept {n}", axis(n)) for n in range(3)])
    await index.upsert([chunk("vs_a", "g", 0, "small", [0.0, 1.0, 0.0, 0.0])])
    await index.delete_file("vs_a", "f")
    await index.upsert([chunk("vs_a", "f", 0, "kept again", axis(0))])
    await index.optimize()
    assert await index.count("vs_a") == 2
    await index.aclose()
    reopened = await EdgeIndex.open(path)
    try:
        assert await reopened.count("vs_a") == 2
        hits = await reopened.search(["vs_a"], axis(0), "kept", 5)
        assert [h.text for h in hits] == ["kept again"]
        small = await reopened.search(["vs_a"], [0.0, 1.0, 0.0, 0.0], "small", 5)
        assert [h.text for h in small] == ["small"]
    finally:
        await reopened.aclose()


async def test_a_second_process_cannot_open_an_edge_index_in_use(tmp_path: Path) -> None:
    path = str(tmp_path / "index")
    index = await EdgeIndex.open(path)
    try:
        await index.upsert([chunk("vs_a", "f", 0, "held", axis(0))])
        script = textwrap.dedent(
            f"""
            import asyncio
            from ai_gateway.rag.index_edge import EdgeIndex
            asyncio.run(EdgeIndex.open({path!r}))
            """
        )
        other = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
        assert other.returncode != 0
        assert "IndexFolderInUseError" in other.stderr
        assert "serves one process only" in other.stderr
        assert "rag.qdrant_url" in other.stderr
        with pytest.raises(IndexFolderInUseError):  # nor another index in this process
            await EdgeIndex.open(path)
        assert await index.count("vs_a") == 1  # the first is unharmed
    finally:
        await index.aclose()
    again = await EdgeIndex.open(path)  # released on close
    await again.aclose()


async def test_edge_index_keeps_what_it_wrote_when_its_process_dies(tmp_path: Path) -> None:
    """Changes are not flushed one by one: the write-ahead log must hold them."""
    path = str(tmp_path / "index")
    script = textwrap.dedent(
        f"""
        import asyncio, os
        from ai_gateway.rag.index import ChunkPoint
        from ai_gateway.rag.index_edge import EdgeIndex

        async def main():
            index = await EdgeIndex.open({path!r})
            vector = [1.0] + [0.0] * {SIZE - 1}
            await index.upsert([ChunkPoint("vs_a", "f1", "f1.txt", n, f"text {{n}}", vector)
                                for n in range(3)])
            await index.delete_file("vs_b", "f9")
            os._exit(0)  # no close, no flush

        asyncio.run(main())
        """
    )
    died = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert died.returncode == 0, died.stderr.decode()[-2000:]
    reopened = await EdgeIndex.open(path)
    try:
        assert await reopened.count("vs_a") == 3
    finally:
        await reopened.aclose()
