"""The semantic cache's vector index, on real embedded Qdrant in a temporary folder."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import traceback
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from ai_gateway.cache.config import SemanticConfig
from ai_gateway.cache.semantic import SemanticIndex, SemanticIndexError, SemanticMatch
from ai_gateway.cache.semantic_qdrant import QdrantServer
from ai_gateway.providers.base import EmbeddingsCall
from ai_gateway.providers.local import LocalEmbeddingProvider
from ai_gateway.routing.deployments import Deployment
from ai_gateway.schemas.embeddings import EmbeddingsRequest

FAR_FUTURE = 4_000_000_000.0
A = [1.0, 0.0, 0.0, 0.0]
NEAR_A = [0.99, 0.1, 0.0, 0.0]  # cosine with A: 0.995
B = [0.0, 1.0, 0.0, 0.0]  # cosine with A: 0


def open_index(
    folder: Path, clock: Callable[[], float] = lambda: 0.0, purge_every_s: float = 600.0
) -> SemanticIndex:
    config = SemanticConfig(qdrant_path=str(folder / "qdrant"))
    return SemanticIndex.open(
        config, str(folder / "unused"), clock=clock, purge_every_s=purge_every_s
    )


@pytest.fixture
async def index(tmp_path: Path) -> AsyncIterator[SemanticIndex]:
    opened = open_index(tmp_path)
    yield opened
    await opened.aclose()


async def add(
    index: SemanticIndex,
    vector: list[float],
    key: str,
    *,
    partition: str = "team-1|default|gpt-4o",
    params: str = "p1",
    expires_at: float = FAR_FUTURE,
) -> None:
    await index.add(vector, key=key, partition=partition, params=params, expires_at=expires_at)


async def search(
    index: SemanticIndex,
    vector: list[float],
    *,
    partition: str = "team-1|default|gpt-4o",
    params: str = "p1",
    threshold: float = 0.9,
    now: float = 1_000.0,
) -> SemanticMatch | None:
    return await index.search(
        vector, partition=partition, params=params, threshold=threshold, now=now
    )


async def test_the_nearest_point_above_the_threshold_matches(index: SemanticIndex) -> None:
    await add(index, A, "key-a")
    await add(index, B, "key-b")
    await add(index, [0.9, 0.0, 0.4, 0.0], "key-c")  # cosine with NEAR_A: 0.90
    match = await search(index, NEAR_A)
    assert match is not None
    assert match.key == "key-a"
    assert match.similarity == pytest.approx(0.995, abs=1e-3)
    assert await search(index, NEAR_A, threshold=0.999) is None
    assert await search(index, [0.0, 0.0, 0.0, 1.0]) is None  # nothing near


async def test_an_empty_index_has_no_match(index: SemanticIndex) -> None:
    assert await search(index, A) is None


async def test_partitions_never_see_each_other(index: SemanticIndex) -> None:
    await add(index, A, "key-team-1", partition="team-1|default|gpt-4o")
    assert await search(index, A, partition="team-2|default|gpt-4o") is None
    assert await search(index, A, partition="team-1|default|gpt-4o-mini") is None
    match = await search(index, A, partition="team-1|default|gpt-4o")
    assert match is not None
    assert match.key == "key-team-1"
    assert match.similarity == pytest.approx(1.0)


async def test_other_parameters_never_match(index: SemanticIndex) -> None:
    await add(index, A, "key-warm", params="temperature=0.9")
    assert await search(index, A, params="temperature=0") is None
    match = await search(index, A, params="temperature=0.9")
    assert match is not None
    assert match.key == "key-warm"


async def test_an_expired_point_never_matches(index: SemanticIndex) -> None:
    await add(index, A, "key-a", expires_at=2_000.0)
    assert await search(index, A, now=1_999.0) is not None
    assert await search(index, A, now=2_000.0) is None
    assert await search(index, A, now=5_000.0) is None


async def test_expired_points_are_purged_now_and_then(tmp_path: Path) -> None:
    clock = [10.0]
    index = open_index(tmp_path, clock=lambda: clock[0], purge_every_s=600.0)
    try:
        await add(index, A, "key-old", expires_at=50.0)  # purges at 10: nothing has expired
        clock[0] = 100.0
        await add(index, B, "key-b")  # no purge before 610
        # Searching as of a time before it expired shows whether the point is still stored.
        assert await search(index, A, now=40.0) is not None
        clock[0] = 700.0
        await add(index, B, "key-b")
        assert await search(index, A, now=40.0) is None
        assert await search(index, B, now=40.0) is not None
    finally:
        await index.aclose()


async def test_adding_a_key_again_replaces_its_vector(index: SemanticIndex) -> None:
    await add(index, A, "key-1")
    await add(index, B, "key-1", params="p1")
    assert await search(index, A) is None
    match = await search(index, B)
    assert match is not None
    assert match.key == "key-1"


async def test_clear_one_partition_or_all(index: SemanticIndex) -> None:
    await add(index, A, "key-1", partition="one")
    await add(index, A, "key-2", partition="two")
    await add(index, [1.0, 0.0, 0.0], "key-3", partition="two")  # another vector size
    await index.clear("one")
    assert await search(index, A, partition="one") is None
    assert await search(index, A, partition="two") is not None
    await index.clear()
    assert await search(index, A, partition="two") is None
    assert await search(index, [1.0, 0.0, 0.0], partition="two") is None
    await add(index, A, "key-1", partition="one")  # still usable after a clear
    assert await search(index, A, partition="one") is not None


async def test_each_vector_size_has_its_own_collection(index: SemanticIndex) -> None:
    await add(index, A, "key-4d")
    await add(index, [0.0, 1.0, 0.0], "key-3d")
    small = await search(index, [0.0, 1.0, 0.0])
    large = await search(index, A)
    assert small is not None
    assert small.key == "key-3d"
    assert large is not None
    assert large.key == "key-4d"
    assert await search(index, [1.0] * 8) is None  # a size never stored: no match, no error


async def test_concurrent_first_adds_of_a_size_all_land(index: SemanticIndex) -> None:
    vectors = [[1.0, float(i), 0.0, 0.0, 0.0] for i in range(5)]
    await asyncio.gather(*(add(index, v, f"key-{i}") for i, v in enumerate(vectors)))
    for i, vector in enumerate(vectors):
        match = await search(index, vector, threshold=0.9999)
        assert match is not None
        assert match.key == f"key-{i}"


async def test_a_lookup_cancelled_midway_leaves_the_index_working(index: SemanticIndex) -> None:
    """A client that goes away cancels its lookup; the others, and later ones, go on."""
    await add(index, A, "key-a")
    lookups = [asyncio.create_task(search(index, A)) for _ in range(6)]
    await asyncio.sleep(0)
    for lookup in lookups[::2]:
        lookup.cancel()
    results = await asyncio.gather(*lookups, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results[::2])
    assert all(isinstance(r, SemanticMatch) and r.key == "key-a" for r in results[1::2])
    assert await search(index, A) is not None


async def test_an_empty_vector_is_an_index_error(index: SemanticIndex) -> None:
    with pytest.raises(SemanticIndexError, match="empty vector"):
        await add(index, [], "key")


async def test_points_outlive_the_process_that_stored_them(tmp_path: Path) -> None:
    first = open_index(tmp_path)
    await add(first, A, "key-a")
    await first.aclose()
    with pytest.raises(SemanticIndexError, match="closed"):
        await search(first, A)
    second = open_index(tmp_path)
    try:
        match = await search(second, A)
        assert match is not None
        assert match.key == "key-a"
    finally:
        await second.aclose()


async def test_a_second_index_on_the_same_folder_says_what_to_do(tmp_path: Path) -> None:
    first = open_index(tmp_path)
    await add(first, A, "key-a")
    second = open_index(tmp_path)
    try:
        for _ in range(2):  # the second attempt fails at once, with the same message
            with pytest.raises(SemanticIndexError) as info:
                await search(second, A)
            message = str(info.value)
            assert str(tmp_path / "qdrant") in message
            assert "another process" in message
            assert "cache.semantic.qdrant_url" in message
        assert await search(first, A) is not None  # the first goes on
    finally:
        await second.aclose()
        await first.aclose()


async def test_a_folder_held_by_another_process_says_what_to_do(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path / "qdrant")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "holding"
        index = open_index(tmp_path)
        with pytest.raises(SemanticIndexError, match="in use by another process") as info:
            await search(index, A)
        assert "cache.semantic.qdrant_url" in str(info.value)
        await index.aclose()
    finally:
        holder.communicate("")
    assert holder.returncode == 0


_HOLDER = """
import sys
from qdrant_client import QdrantClient
client = QdrantClient(path=sys.argv[1])
print("holding", flush=True)
sys.stdin.read()
client.close()
"""


# -- a Qdrant server: its URL's credentials stay out of every message --------------------------


def test_a_server_url_loses_its_credentials() -> None:
    with_password = QdrantServer.parse("https://:s3cr3t-k3y@qdrant.internal:6333/base/")
    assert with_password.url == "https://qdrant.internal:6333/base"
    assert with_password.api_key == "s3cr3t-k3y"
    assert "s3cr3t" not in repr(with_password)
    with_query = QdrantServer.parse("http://127.0.0.1:6333?api_key=s3cr3t-k3y")
    assert with_query.url == "http://127.0.0.1:6333"
    assert with_query.api_key == "s3cr3t-k3y"
    assert QdrantServer.parse("http://localhost:6333").api_key is None


def test_a_server_url_that_is_not_http_is_refused_at_once() -> None:
    config = SemanticConfig(qdrant_url="qdrant.internal:6333")
    with pytest.raises(SemanticIndexError, match="must be an http"):
        SemanticIndex.open(config, "data")


async def test_an_unreachable_server_is_an_index_error_without_the_key(tmp_path: Path) -> None:
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    config = SemanticConfig(qdrant_url="https://:s3cr3t-k3y@127.0.0.1:9?api_key=s3cr3t-k3y")
    index = SemanticIndex.open(config, str(tmp_path))
    try:
        with pytest.raises(SemanticIndexError) as info:
            await search(index, A)
        assert "https://127.0.0.1:9" in str(info.value)
        assert "s3cr3t" not in "".join(traceback.format_exception(info.value))
    finally:
        await index.aclose()
    assert not (tmp_path / "qdrant").exists()  # a server: no embedded folder


async def test_an_index_in_data_dir_by_default(tmp_path: Path) -> None:
    index = SemanticIndex.open(SemanticConfig(), str(tmp_path))
    assert not (tmp_path / "qdrant").exists()  # nothing happens before the first call
    try:
        await add(index, A, "key-a")
    finally:
        await index.aclose()
    assert (tmp_path / "qdrant").is_dir()


# -- calibration with the built-in local embedding model -----------------------------------------

# With local/all-minilm-l6-v2, "What is the capital of France?" and "what's the capital of france"
# score only about 0.91 (the apostrophe and the question mark weigh on a mean over 7 tokens): a
# pair for a 0.95 threshold must be closer than that.
PARAPHRASE = ("How do I reverse a list in Python?", "how can I reverse a list in python")
UNRELATED = "What is the capital of France?"
LOCAL = Deployment(
    id="local/all-minilm-l6-v2",
    group="local/all-minilm-l6-v2",
    provider="local",
    model="all-minilm-l6-v2",
    api_base="local:",
    from_config=False,
)


async def embed(texts: list[str]) -> list[list[float]]:
    provider = LocalEmbeddingProvider()
    body = {"model": "local/all-minilm-l6-v2", "input": texts, "encoding_format": "float"}
    call = EmbeddingsCall(body=body, parsed=EmbeddingsRequest.model_validate(body))
    try:
        response = await provider.embeddings(LOCAL, call)
    finally:
        await provider.aclose()
    return [item["embedding"] for item in response["data"]]


async def test_the_local_model_puts_a_paraphrase_above_the_threshold(index: SemanticIndex) -> None:
    pytest.importorskip("sentence_transformers", reason="the 'local' extra is not installed")
    asked, paraphrase, unrelated = await embed([*PARAPHRASE, UNRELATED])
    close = sum(x * y for x, y in zip(asked, paraphrase, strict=True))  # unit vectors
    far = sum(x * y for x, y in zip(asked, unrelated, strict=True))
    print(f"cosine: paraphrase {close:.4f}, unrelated {far:.4f}")
    assert close > 0.95
    assert far < 0.5
    await add(index, asked, "key-reverse")
    match = await search(index, paraphrase, threshold=0.95)
    assert match is not None
    assert match.key == "key-reverse"
    assert match.similarity == pytest.approx(close, abs=1e-4)
    assert await search(index, unrelated, threshold=0.5) is None


def test_importing_the_index_does_not_import_qdrant() -> None:
    """qdrant_client takes seconds to import: a gateway without the semantic cache never does."""
    code = "import sys, ai_gateway.cache.semantic; print('qdrant_client' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
