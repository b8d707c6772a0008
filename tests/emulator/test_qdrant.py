"""The Qdrant server emulator over real HTTP: Qdrant's envelope and error shapes, its API-key
check, answers equal to what qdrant-client's local mode gives in process for the same calls,
collections kept in a folder across restarts, the command line, and the gateway's two Qdrant
users (the RAG index and the semantic cache) as its clients."""

from __future__ import annotations

import sys
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, SecretStr
from qdrant_client import AsyncQdrantClient, models

from ai_gateway.cache.config import SemanticConfig
from ai_gateway.cache.semantic import SemanticIndex
from ai_gateway.emulator.qdrant import QdrantEmulatorSettings, start
from ai_gateway.rag.index import ChunkPoint
from ai_gateway.rag.index_qdrant import QdrantIndex
from harness import free_port, output, start_process, wait_http

Started = Callable[..., Awaitable[str]]


@pytest.fixture
async def emulator() -> AsyncIterator[Started]:
    """Start emulators (settings as keywords); each is stopped at the end of the test."""
    runners: list[Any] = []

    async def _start(**settings: Any) -> str:
        runner, port = await start(QdrantEmulatorSettings(**settings))
        runners.append(runner)
        return f"http://127.0.0.1:{port}"

    yield _start
    for runner in runners:
        await runner.cleanup()


async def test_answers_in_qdrants_envelope_and_errors_in_its_error_shape(
    emulator: Started,
) -> None:
    url = await emulator()
    async with httpx.AsyncClient(base_url=url) as http:
        listed = (await http.get("/collections")).json()
        assert listed["result"] == {"collections": []}
        assert listed["status"] == "ok"
        assert isinstance(listed["time"], float)

        spec = {"vectors": {"size": 4, "distance": "Cosine"}}
        made = await http.put("/collections/docs", json=spec)
        assert made.json()["result"] is True
        again = await http.put("/collections/docs", json=spec)
        assert again.status_code == 409
        assert again.json()["status"]["error"] == "Wrong input: Collection `docs` already exists!"

        missing = await http.post("/collections/nope/points/count", json={})
        assert missing.status_code == 404
        body = missing.json()
        assert body["status"] == {"error": "Not found: Collection `nope` doesn't exist!"}
        assert isinstance(body["time"], float)
        assert (await http.get("/collections/nope/exists")).json()["result"] == {"exists": False}

        malformed = await http.post("/collections/docs/points/query", content=b"{not json")
        assert malformed.status_code == 400
        assert malformed.json()["status"]["error"].startswith("Format error in JSON body")
        wrong = await http.post("/collections/docs/points/query", json={"limit": "many"})
        assert wrong.status_code == 400
        assert "limit" in wrong.json()["status"]["error"]

        # Qdrant's REST defaults: a query returns no payload unless asked, a scroll returns it.
        point = {"id": 1, "vector": [1.0, 0.0, 0.0, 0.0], "payload": {"k": "v"}}
        upserted = await http.put("/collections/docs/points?wait=true", json={"points": [point]})
        assert upserted.json()["result"]["status"] == "completed"
        found = await http.post("/collections/docs/points/query", json={"query": [1, 0, 0, 0]})
        [hit] = found.json()["result"]["points"]
        assert hit["id"] == 1
        assert hit.get("payload") is None
        scrolled = await http.post("/collections/docs/points/scroll", json={})
        assert scrolled.json()["result"]["points"][0]["payload"] == {"k": "v"}

        unknown = await http.get("/snapshots")  # Qdrant's, but not emulated
        assert unknown.status_code == 404
        assert unknown.json()["status"]["error"] == "Not found: no endpoint GET /snapshots"
        assert (await http.delete("/collections/docs/exists")).status_code == 405

        root = (await http.get("/")).json()
        assert root["title"] == "qdrant - vector search engine"
        assert (await http.get("/readyz")).text == "all shards are ready"


async def test_an_api_key_is_required_when_configured(emulator: Started) -> None:
    url = await emulator(api_keys=frozenset({"qk-right-7d1"}))
    async with httpx.AsyncClient(base_url=url) as http:
        none = await http.get("/collections")
        assert none.status_code == 401
        assert "API key" in none.json()["status"]["error"]
        wrong = await http.get("/collections", headers={"api-key": "qk-wrong"})
        assert wrong.status_code == 403
        assert "qk-wrong" not in wrong.text
        assert (await http.get("/collections", headers={"api-key": "qk-right-7d1"})).is_success
        bearer = {"Authorization": "Bearer qk-right-7d1"}
        assert (await http.get("/collections", headers=bearer)).is_success
        assert (await http.get("/healthz")).is_success  # probes need no key, as Qdrant's

    # The RAG index sends the key it is given; without it, each call is an index error.
    with pytest.warns(UserWarning, match="insecure connection"):
        keyed = QdrantIndex("rag", url=url, api_key="qk-right-7d1")
    point = ChunkPoint("vs_a", "f", "f.txt", 0, "keyed text", [1.0, 0.0, 0.0])
    await keyed.upsert([point])
    assert await keyed.count("vs_a") == 1
    await keyed.aclose()


def _dump(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_dump(v) for v in value]
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


async def _scenario(client: AsyncQdrantClient) -> list[Any]:
    """Every call the emulator serves, and what each returned."""
    answers: list[Any] = []
    await client.create_collection(
        "docs",
        vectors_config={"dense": models.VectorParams(size=3, distance=models.Distance.COSINE)},
        sparse_vectors_config={"kw": models.SparseVectorParams(modifier=models.Modifier.IDF)},
    )
    index = models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True)
    await client.create_payload_index("docs", "store", field_schema=index)
    points = [
        models.PointStruct(
            id=n,
            vector={
                "dense": [1.0, n / 10, (n % 3) / 5],
                "kw": models.SparseVector(indices=[n % 4, 7], values=[1.0, 0.5]),
            },
            payload={
                "store": "a" if n % 2 else "b",
                "n": n,
                "tags": {"lang": "en" if n < 5 else "fr"},
            },
        )
        for n in range(1, 10)
    ]
    answers.append(await client.upsert("docs", points, wait=True))
    in_a = models.Filter(
        must=[models.FieldCondition(key="store", match=models.MatchValue(value="a"))]
    )
    ranged = models.Filter(
        must=[models.FieldCondition(key="n", range=models.Range(gte=3, lt=8))],
        must_not=[models.FieldCondition(key="tags.lang", match=models.MatchAny(any=["fr"]))],
    )
    answers.append(await client.count("docs", count_filter=in_a, exact=True))
    answers.append(
        await client.query_points(
            "docs", query=[1.0, 0.3, 0.1], using="dense", query_filter=ranged, limit=3
        )
    )
    answers.append(
        await client.query_points(
            "docs",
            prefetch=[
                models.Prefetch(query=[0.9, 0.1, 0.4], using="dense", filter=in_a, limit=5),
                models.Prefetch(
                    query=models.SparseVector(indices=[1, 3], values=[1.0, 1.0]),
                    using="kw",
                    filter=in_a,
                    limit=5,
                ),
            ],
            query=models.FusionQuery(fusion=models.Fusion.RRF),
            limit=4,
            with_payload=True,
            with_vectors=["dense"],
        )
    )
    answers.append(
        await client.query_points("docs", query=[0.0, 1.0, 0.0], using="dense", score_threshold=0.3)
    )
    first, after = await client.scroll("docs", scroll_filter=in_a, limit=2)
    answers.append((first, after))
    answers.append(await client.scroll("docs", scroll_filter=in_a, limit=2, offset=after))
    answers.append(await client.retrieve("docs", [2, 4, 99], with_vectors=True))
    selector = models.FilterSelector(filter=in_a)
    answers.append(await client.set_payload("docs", {"seen": True}, selector, wait=True))
    answers.append(await client.overwrite_payload("docs", {"n": 0}, [2]))
    answers.append(await client.delete_payload("docs", ["tags"], [4]))
    answers.append(await client.delete("docs", models.PointIdsList(points=[9]), wait=True))
    answers.append(await client.delete("docs", models.FilterSelector(filter=ranged)))
    answers.append(await client.scroll("docs", limit=20))
    request = models.QueryRequest(query=[1.0, 0.0, 0.0], using="dense", limit=2, with_payload=True)
    answers.append(await client.query_batch_points("docs", [request, request]))
    answers.append((await client.get_collection("docs")).points_count)
    answers.append(await client.get_collections())
    answers.append(await client.delete_collection("docs"))
    answers.append(await client.collection_exists("docs"))
    return [_dump(answer) for answer in answers]


async def test_answers_are_local_modes_own(emulator: Started) -> None:
    """The same calls through the emulator's REST API and to local mode in process give the
    same answers: what the emulator adds (HTTP, parsing, defaults) changes nothing."""
    url = await emulator()
    remote = AsyncQdrantClient(url=url, check_compatibility=False)
    local = AsyncQdrantClient(location=":memory:")
    try:
        over_http = await _scenario(remote)
        with warnings.catch_warnings():  # local mode's notice that payload indexes do nothing
            warnings.simplefilter("ignore", UserWarning)
            in_process = await _scenario(local)
    finally:
        await remote.close()
        await local.close()
    assert over_http == in_process
    assert over_http[1] == {"count": 5}  # odd ids 1..9
    fused = over_http[3]["points"]
    assert len(fused) == 4
    assert all(p["payload"]["store"] == "a" and set(p["vector"]) == {"dense"} for p in fused)
    assert over_http[-1] is False  # the collection deleted at the end


async def test_collections_in_a_folder_outlive_the_emulator(tmp_path: Path) -> None:
    folder = str(tmp_path / "qdrant")
    runner, port = await start(QdrantEmulatorSettings(path=folder))
    url = f"http://127.0.0.1:{port}"
    try:
        index = QdrantIndex("rag", url=url)
        await index.upsert(
            [ChunkPoint("vs_a", "f", "f.txt", n, "kept", [1.0, 0.0]) for n in range(3)]
        )
        await index.aclose()
        with pytest.raises(RuntimeError, match="already served by another Qdrant emulator"):
            await start(QdrantEmulatorSettings(path=folder))
    finally:
        await runner.cleanup()
    runner, port = await start(QdrantEmulatorSettings(path=folder))
    try:
        index = QdrantIndex("rag", url=f"http://127.0.0.1:{port}")
        assert await index.count("vs_a") == 3
        hits = await index.search(["vs_a"], [1.0, 0.0], "kept", 5)
        assert {hit.chunk for hit in hits} == {0, 1, 2}
        await index.aclose()
    finally:
        await runner.cleanup()


async def test_the_semantic_cache_index_uses_it_as_a_server(emulator: Started) -> None:
    url = await emulator()
    config = SemanticConfig(qdrant_url=SecretStr(url))
    index = SemanticIndex.open(config, "unused")
    try:
        await index.add([1.0, 0.0, 0.0], key="k1", partition="team|gpt", params="p", expires_at=4e9)
        found = await index.search(
            [0.99, 0.1, 0.0], partition="team|gpt", params="p", threshold=0.9, now=1.0
        )
        assert found is not None
        assert found.key == "k1"
        other = await index.search(
            [0.99, 0.1, 0.0], partition="other|gpt", params="p", threshold=0.9, now=1.0
        )
        assert other is None
    finally:
        await index.aclose()


def test_the_command_line_serves_it_from_a_folder(tmp_path: Path) -> None:
    port = free_port()
    folder = tmp_path / "collections"
    argv = [sys.executable, "-m", "ai_gateway", "emulate", "--qdrant"]
    argv += ["--qdrant-port", str(port), "--qdrant-path", str(folder)]
    with start_process(argv, env={"QDRANT_API_KEY": "qk-cli-42"}) as proc:
        wait_http(f"http://127.0.0.1:{port}/readyz", proc=proc)
        url = f"http://127.0.0.1:{port}/collections/c"
        spec = {"vectors": {"size": 2, "distance": "Dot"}}
        assert httpx.put(url, json=spec).status_code == 401
        assert httpx.put(url, json=spec, headers={"api-key": "qk-cli-42"}).is_success
        proc.terminate()  # SIGTERM: a clean stop
        text = output(proc)
        assert proc.returncode == 0, text
    assert f"Qdrant emulator on http://127.0.0.1:{port} (collections in {folder})" in text
    assert (folder / "collection" / "c").is_dir()
