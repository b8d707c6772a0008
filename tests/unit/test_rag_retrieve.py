"""The retrieve stage and the search service with a real SQLite store and a real embedded index
(Qdrant Edge) in a temporary folder; the embedding model is a stand-in (bag of words). What a
caller would notice: passages in the prompt within the budget, the file_search tool gone from
what is sent, citations where asked, expired and foreign stores refused."""

from __future__ import annotations

import hashlib
import math
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ai_gateway.errors import InvalidRequestError, NotFoundError
from ai_gateway.pipeline.exchange import Exchange, Outcome, chat_exchange
from ai_gateway.pipeline.retrieve import Retrieve
from ai_gateway.rag.access import owner_of, viewer_of
from ai_gateway.rag.blobs import FileBlobs
from ai_gateway.rag.config import RagConfig
from ai_gateway.rag.index import ChunkPoint, VectorIndex
from ai_gateway.rag.index_edge import EdgeIndex
from ai_gateway.rag.ingest import Ingestor
from ai_gateway.rag.records import EVERYONE, Owner, VectorStoreRecord, Viewer
from ai_gateway.rag.search import Searcher, rewrite
from ai_gateway.rag.service import RagService
from ai_gateway.rag.spec import SearchBody
from ai_gateway.request_info import RequestInfo
from ai_gateway.security.config import RequestLimits
from ai_gateway.security.keys import ApiKey
from ai_gateway.security.principal import MASTER, Principal
from ai_gateway.stores.rag_sqlite import SQLiteRagStore

SIZE = 32
DAY = 86_400
PASSAGES = {
    "runbook.md": "Drain the ingest queue with qf-admin drain before restarting workers.",
    "billing.txt": "Error code LRK-4471 means the card issuer declined the charge.",
    "glossary.md": "Quillfeather is the document rendering service of Larkspur Labs.",
}


def bag_of_words(text: str) -> list[float]:
    vector = [0.0] * SIZE
    for word in text.lower().replace("?", " ").replace(".", " ").split():
        vector[hashlib.blake2b(word.encode(), digest_size=2).digest()[0] % SIZE] += 1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


async def embed(texts: list[str]) -> list[list[float]]:
    return [bag_of_words(text) for text in texts]


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class Parts:
    def __init__(self, tmp_path: Path, **config: Any) -> None:
        self.config = RagConfig.model_validate(config)
        self.store = SQLiteRagStore(tmp_path / "gateway.db")
        self.path = str(tmp_path / "index")
        self.index: EdgeIndex | None = None
        self.clock = Clock()
        blobs = FileBlobs(tmp_path / "files")
        ingestor = Ingestor(self.config, self.store, self.open_index, blobs, embed)
        self.service = RagService(
            self.config, self.store, self.open_index, blobs, ingestor, clock=self.clock
        )
        self.searcher = Searcher(self.service, embed)

    async def open_index(self) -> VectorIndex:
        if self.index is None:
            self.index = await EdgeIndex.open(self.path)
        return self.index

    async def store_with_passages(self, store_id: str, owner: Owner, **extra: Any) -> None:
        now = int(self.clock.now)
        record = VectorStoreRecord(store_id, "s", None, {}, now, now, None, owner)
        await self.store.add_store(VectorStoreRecord(**{**_fields(record), **extra}))
        index = await self.open_index()
        await index.upsert(
            [
                ChunkPoint(store_id, f"file-{n:024x}", name, 0, text, bag_of_words(text))
                for n, (name, text) in enumerate(PASSAGES.items())
            ]
        )

    def stage(self, budget: int = 4000, window: int | None = None) -> Retrieve:
        config = self.config.model_copy(update={"context_tokens": budget})
        return Retrieve(self.searcher, config, lambda t: len(t.split()), lambda m: window, 0.5)


def _fields(record: VectorStoreRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__dataclass_fields__}


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[Parts]:
    made = Parts(tmp_path)
    await made.store.start()
    yield made
    if made.index is not None:
        await made.index.aclose()
    await made.store.aclose()


def alice() -> Principal:
    return Principal(kind="key", user="alice", team="ops", key=_key("a11ce0000001", "alice"))


def _key(key_id: str, user: str) -> ApiKey:
    return ApiKey(
        id=key_id, user=user, salt=b"s" * 16, secret_hash=b"h" * 32, created_at=datetime.now(UTC)
    )


def exchange(principal: Principal | None = None, **extra: Any) -> Exchange:
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What does error LRK-4471 mean?"},
        ],
        **extra,
    }
    made = chat_exchange(body, RequestInfo(request_id="r"), RequestLimits())
    made.info.principal = principal
    return made


class Upstream:
    def __init__(self, stream: bool = False) -> None:
        self.sent: Exchange | None = None
        self.stream = stream

    async def __call__(self, exchange: Exchange) -> Outcome:
        self.sent = exchange
        if self.stream:
            return self._chunks()
        return {"object": "chat.completion", "choices": []}

    async def _chunks(self) -> AsyncGenerator[dict[str, Any], None]:
        for n in range(2):
            yield {"object": "chat.completion.chunk", "n": n}


async def test_passages_go_after_the_system_text_with_citations(parts: Parts) -> None:
    await parts.store_with_passages("vs_1", owner_of(alice(), "user"))
    upstream = Upstream()
    sent = exchange(alice(), rag={"vector_store_ids": ["vs_1"], "citations": True})
    answer = await parts.stage()(sent, upstream)
    assert upstream.sent is not None
    messages = upstream.sent.chat.body["messages"]
    assert [m["role"] for m in messages] == ["system", "system", "user"]
    block = messages[1]["content"]
    assert block.index("billing.txt") < block.index("runbook.md")  # best first
    assert sent.headers["x-gateway-citations"].startswith("file-000000000000000000000001;")
    assert isinstance(answer, dict)
    assert answer["citations"][0]["filename"] == "billing.txt"
    assert upstream.sent.chat.parsed.messages[1].role == "system"  # the typed view agrees


async def test_a_file_search_tool_is_run_here_and_not_sent(parts: Parts) -> None:
    await parts.store_with_passages("vs_1", owner_of(alice(), "user"))
    upstream = Upstream(stream=True)
    tool = {"type": "file_search", "vector_store_ids": ["vs_1"], "max_num_results": 1}
    sent = exchange(alice(), tools=[tool], tool_choice="auto", stream=True)
    outcome = await parts.stage()(sent, upstream)
    assert not isinstance(outcome, dict)
    chunks = [chunk async for chunk in outcome]
    assert "citations" not in chunks[0]  # not asked for
    assert upstream.sent is not None
    body = upstream.sent.chat.body
    assert "tools" not in body
    assert "tool_choice" not in body
    assert body["messages"][1]["content"].count("[1]") == 1  # max_num_results: 1
    assert "[2]" not in body["messages"][1]["content"]


async def test_citations_ride_on_the_first_chunk_of_a_stream(parts: Parts) -> None:
    await parts.store_with_passages("vs_1", owner_of(alice(), "user"))
    sent = exchange(alice(), rag={"vector_store_ids": ["vs_1"], "citations": True}, stream=True)
    outcome = await parts.stage()(sent, Upstream(stream=True))
    assert not isinstance(outcome, dict)
    chunks = [chunk async for chunk in outcome]
    assert chunks[0]["citations"][0]["vector_store_id"] == "vs_1"
    assert "citations" not in chunks[1]


async def test_passages_that_do_not_fit_the_budget_are_left_out(parts: Parts) -> None:
    await parts.store_with_passages("vs_1", owner_of(alice(), "user"))
    upstream = Upstream()
    sent = exchange(alice(), rag={"vector_store_ids": ["vs_1"]})
    await parts.stage(budget=45)(sent, upstream)  # the heading and about one passage
    assert upstream.sent is not None
    block = upstream.sent.chat.body["messages"][1]["content"]
    assert "[1]" in block
    assert "[2]" not in block
    # A window too small for anything: no block at all, and the header says so.
    sent = exchange(alice(), rag={"vector_store_ids": ["vs_1"]})
    await parts.stage(window=20)(sent, upstream)
    assert [m["role"] for m in upstream.sent.chat.body["messages"]] == ["system", "user"]
    assert sent.headers["x-gateway-citations"] == "none"


async def test_someone_else_s_store_is_not_found(parts: Parts) -> None:
    await parts.store_with_passages("vs_bob", Owner("user", "bob"))
    with pytest.raises(NotFoundError, match="vs_bob"):
        await parts.stage()(exchange(alice(), rag={"vector_store_ids": ["vs_bob"]}), Upstream())
    tool = {"type": "file_search", "vector_store_ids": ["vs_bob"]}
    with pytest.raises(NotFoundError):
        await parts.stage()(exchange(alice(), tools=[tool]), Upstream())
    # The master key sees it.
    assert await parts.stage()(exchange(MASTER, rag={"vector_store_ids": ["vs_bob"]}), Upstream())


async def test_an_expired_store_is_refused_and_shown_expired(parts: Parts) -> None:
    expires = {"anchor": "last_active_at", "days": 2}
    await parts.store_with_passages("vs_1", owner_of(alice(), "user"), expires_after=expires)
    body = SearchBody(query="LRK-4471")
    viewer = viewer_of(alice())
    assert (await parts.searcher.page("vs_1", body, viewer))["data"]
    parts.clock.now += 2 * DAY + 1  # the search above made it active then
    with pytest.raises(InvalidRequestError) as expired:
        await parts.searcher.page("vs_1", body, viewer)
    assert expired.value.code == "vector_store_expired"
    record = await parts.service.vector_store("vs_1", viewer)
    assert record.view(parts.service.now())["status"] == "expired"
    with pytest.raises(InvalidRequestError):
        await parts.stage()(exchange(alice(), rag={"vector_store_ids": ["vs_1"]}), Upstream())


def test_owners_follow_the_scope_and_viewers_see_their_own() -> None:
    caller = alice()
    assert owner_of(caller, "user") == Owner("user", "alice")
    assert owner_of(caller, "team") == Owner("team", "ops")
    assert owner_of(caller, "key") == Owner("key", "a11ce0000001")
    loner = Principal(kind="key", key=_key("000000000002", "u"))
    assert owner_of(loner, "team") == Owner("key", "000000000002")  # no user, no team
    assert viewer_of(MASTER) is EVERYONE
    assert viewer_of(None) is EVERYONE
    viewer = viewer_of(caller)
    assert viewer.sees(Owner("team", "ops"))
    assert not viewer.sees(Owner("team", "billing"))
    assert not viewer.sees(Owner("master", ""))
    assert Viewer(all=True).sees(Owner("master", ""))


def test_rewrite_keeps_the_words_that_carry_meaning() -> None:
    assert rewrite("What does error LRK-4471 mean?") == "error LRK-4471 mean"
    assert rewrite("how is it?") == "how is it?"  # nothing left: the query itself


async def test_a_store_holds_at_most_max_files_per_store(tmp_path: Path) -> None:
    parts = Parts(tmp_path, limits={"max_files_per_store": 2})
    await parts.store.start()
    try:
        owner = owner_of(alice(), "user")
        viewer = viewer_of(alice())
        await parts.store_with_passages("vs_1", owner)
        ids = [
            (await parts.service.upload(f"{n}.txt", b"some text", "assistants", owner)).id
            for n in range(3)
        ]
        for file_id in ids[:2]:
            await parts.service.add_file("vs_1", file_id, None, None, viewer)
        with pytest.raises(InvalidRequestError) as full:
            await parts.service.add_file("vs_1", ids[2], None, None, viewer)
        assert full.value.code == "too_many_files"
        assert "max_files_per_store" in full.value.message
        again = await parts.service.add_file("vs_1", ids[0], None, None, viewer)  # idempotent
        assert again.file_id == ids[0]
    finally:
        if parts.index is not None:
            await parts.index.aclose()
        await parts.store.aclose()
