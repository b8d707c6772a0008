"""Both response store backends on real databases (a SQLite file, and PostgreSQL in a throwaway
database, each test in its own schema): a response kept and read back, who sees it, a
conversation read back through its previous_response_id links (bounded, oldest first, stopping
at what the caller may not see or what has expired), deletes and the sweep of expired ones."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ai_gateway.rag.records import ANYONE, EVERYONE, Owner, Viewer
from ai_gateway.responses.config import ResponsesConfig
from ai_gateway.responses.keeper import Keeper
from ai_gateway.responses.records import StoredResponse
from ai_gateway.stores.responses_postgres import PostgresResponseStore
from ai_gateway.stores.responses_sqlite import SQLiteResponseStore
from analytics_support import throwaway_database

pytestmark = pytest.mark.integration

Store = SQLiteResponseStore | PostgresResponseStore
ALICE = Owner("user", "alice")
ALICE_SEES = Viewer(key="k1", user="alice")
BOB_SEES = Viewer(key="k2", user="bob")
T = 1_750_000_000


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    with throwaway_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    tag = uuid.uuid4().hex[:12]
    made: Store
    if request.param == "sqlite":
        made = SQLiteResponseStore(tmp_path / f"{tag}.db")
    else:
        made = PostgresResponseStore(request.getfixturevalue("pg_database"), schema=f"t_{tag}")
    await made.start()
    yield made
    await made.aclose()


def stored(
    response_id: str,
    previous: str | None = None,
    owner: Owner = ALICE,
    created_at: int = T,
    text: str = "answer",
) -> StoredResponse:
    message = {
        "id": f"msg_{response_id}",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    question = {
        "id": f"in_{response_id}",
        "type": "message",
        "role": "user",
        "status": "completed",
        "content": [{"type": "input_text", "text": f"question {response_id} é"}],
    }
    return StoredResponse(
        id=response_id,
        created_at=created_at,
        owner=owner,
        previous_response_id=previous,
        status="completed",
        response={"id": response_id, "object": "response", "output": [message]},
        input_items=[question],
    )


async def test_kept_and_read_back_by_its_owner_only(store: Store) -> None:
    await store.put(stored("resp_a", text="ünïcode ✓"))
    for viewer in (ALICE_SEES, EVERYONE):
        got = await store.get("resp_a", viewer, T)
        assert got is not None
        assert got.output[0]["content"][0]["text"] == "ünïcode ✓"
        assert got.input_items[0]["content"][0]["text"] == "question resp_a é"
        assert got.owner == ALICE
    assert await store.get("resp_a", BOB_SEES, T) is None
    assert await store.get("resp_a", ALICE_SEES, T + 1) is None  # expired for this read
    assert await store.get("resp_missing", EVERYONE, 0) is None
    await store.put(stored("resp_open", owner=ANYONE))
    assert await store.get("resp_open", BOB_SEES, T) is not None


async def test_a_conversation_is_read_back_oldest_first(store: Store) -> None:
    await store.put(stored("resp_1", created_at=T))
    await store.put(stored("resp_2", "resp_1", created_at=T + 1))
    await store.put(stored("resp_3", "resp_2", created_at=T + 2))
    await store.put(stored("resp_x", "resp_2", created_at=T + 3))  # a fork
    turns = await store.chain("resp_3", ALICE_SEES, T, 100)
    assert [t.id for t in turns] == ["resp_1", "resp_2", "resp_3"]
    assert turns[0].output[0]["id"] == "msg_resp_1"
    assert [t.id for t in await store.chain("resp_x", ALICE_SEES, T, 100)] == [
        "resp_1",
        "resp_2",
        "resp_x",
    ]
    assert [t.id for t in await store.chain("resp_3", ALICE_SEES, T, 2)] == ["resp_2", "resp_3"]
    assert [t.id for t in await store.chain("resp_3", ALICE_SEES, T + 1, 100)] == [
        "resp_2",
        "resp_3",
    ]
    assert await store.chain("resp_3", BOB_SEES, T, 100) == []


async def test_a_chain_stops_where_the_caller_may_not_see(store: Store) -> None:
    await store.put(stored("resp_b1", owner=Owner("user", "bob")))
    await store.put(stored("resp_a2", "resp_b1"))
    assert [t.id for t in await store.chain("resp_a2", ALICE_SEES, T, 100)] == ["resp_a2"]


async def test_delete_and_purge(store: Store) -> None:
    await store.put(stored("resp_old", created_at=T - 100))
    await store.put(stored("resp_new", created_at=T))
    assert not await store.delete("resp_new", BOB_SEES, 0)
    assert await store.delete("resp_new", ALICE_SEES, 0)
    assert not await store.delete("resp_new", ALICE_SEES, 0)
    await store.put(stored("resp_newer", created_at=T + 5))
    assert await store.purge(T) == 1
    assert await store.get("resp_old", EVERYONE, 0) is None
    assert await store.get("resp_newer", EVERYONE, 0) is not None


async def test_the_keeper_sweeps_expired_responses_and_opens_the_store_lazily(
    tmp_path: Path,
) -> None:
    path = tmp_path / "lazy.db"
    keeper = Keeper(ResponsesConfig(ttl_days=1), SQLiteResponseStore(path), sweep_s=0.05)
    await keeper.start()
    assert not path.exists()  # nothing opened before first use
    now = int(time.time())
    assert await keeper.keep(stored("resp_old", owner=ANYONE, created_at=now - 2 * 86_400))
    assert await keeper.keep(stored("resp_new", owner=ANYONE, created_at=now))
    assert await keeper.get("resp_old", None) is None  # expired: not read
    store = keeper.store
    assert store is not None
    deadline = time.monotonic() + 5
    while await store.get("resp_old", EVERYONE, 0) is not None:
        assert time.monotonic() < deadline, "the sweep did not delete the expired response"
        await asyncio.sleep(0.02)
    assert await keeper.get("resp_new", None) is not None
    await keeper.aclose()
