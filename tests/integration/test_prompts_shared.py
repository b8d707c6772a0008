"""Prompt templates on PostgreSQL shared by two gateway instances, which share Redis: a label
moved on one changes the version the other serves within a second (pub/sub), and the store
itself on both backends (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from ai_gateway.stores.prompts import PromptExistsError, PromptStore, VersionMissingError
from ai_gateway.stores.prompts_postgres import PostgresPromptStore
from ai_gateway.stores.prompts_sqlite import SQLitePromptStore
from analytics_support import throwaway_database
from conftest import GatewayFactory, emulator_yaml
from harness import EmulatorServer, GatewayServer

pytestmark = pytest.mark.integration

MASTER = "sk-master-prompts-shared-41aa"
ADMIN = {"Authorization": f"Bearer {MASTER}"}
TEMPLATE = {"messages": [{"role": "system", "content": "Version {{ n }}"}]}
SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with throwaway_database() as url:  # skips (fails under CI) without PostgreSQL
        yield url


def served(gw: GatewayServer) -> str:
    body = {"model": "fast", "messages": [], "prompt": {"id": "shared", "variables": {"n": 1}}}
    resp = httpx.post(f"{gw.url}/v1/chat/completions", json=body, headers=ADMIN, timeout=20)
    assert resp.status_code == 200, resp.text
    return resp.headers["x-gateway-prompt"]


def test_a_label_moved_on_one_instance_is_served_by_both_within_a_second(
    emu: EmulatorServer, start_gateway: GatewayFactory, redis_prefix: str, pg_url: str
) -> None:
    config = emulator_yaml(emu)
    one = start_gateway(config, master_key=MASTER, database_url=pg_url)
    two = start_gateway(config, master_key=MASTER, database_url=pg_url)
    created = httpx.post(
        f"{one.url}/v1/prompts",
        json={"id": "shared", "template": TEMPLATE, "variables": SCHEMA, "labels": ["production"]},
        headers=ADMIN,
    )
    assert created.status_code == 201, created.text
    added = httpx.post(
        f"{two.url}/ai/prompts/shared/versions",
        json={"template": TEMPLATE, "variables": SCHEMA},
        headers=ADMIN,
    )
    assert added.json()["version"] == 2
    # Both instances have the template's head cached (production -> 1).
    assert served(one) == served(two) == "shared@1"
    moved = httpx.put(
        f"{one.url}/v1/prompts/shared/labels/production", json={"version": 2}, headers=ADMIN
    )
    assert moved.status_code == 200, moved.text
    started = time.monotonic()
    assert served(one) == "shared@2"  # the instance that moved it: at once
    while served(two) != "shared@2":
        assert time.monotonic() - started < 1.0, "the other instance still serves version 1"
        time.sleep(0.02)


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[PromptStore]:
    made: PromptStore
    if request.param == "sqlite":
        made = SQLitePromptStore(tmp_path / "analytics.db")
    else:
        made = PostgresPromptStore(request.getfixturevalue("pg_url"), schema="prompts_store_test")
    await made.start()
    yield made
    await made.aclose()


async def test_the_store_numbers_versions_and_moves_labels(store: PromptStore) -> None:
    now = datetime.now(UTC)
    name = f"p{time.monotonic_ns()}"
    record = await store.create_prompt(name, "d", TEMPLATE, SCHEMA, "first", now)
    assert (record.latest_version, record.labels) == (1, {})
    with pytest.raises(PromptExistsError):
        await store.create_prompt(name, None, TEMPLATE, SCHEMA, None, now)
    # Concurrent adds get distinct numbers.
    added = await asyncio.gather(
        *(store.add_version(name, {**TEMPLATE, "seed": i}, SCHEMA, None, now) for i in range(5))
    )
    assert sorted(v.version for v in added if v is not None) == [2, 3, 4, 5, 6]
    assert await store.add_version("missing", TEMPLATE, SCHEMA, None, now) is None
    moved = await store.set_label(name, "production", 3, now)
    assert moved is not None
    assert moved.labels == {"production": 3}
    moved = await store.set_label(name, "production", 6, now)
    assert moved is not None
    assert moved.labels == {"production": 6}
    with pytest.raises(VersionMissingError):
        await store.set_label(name, "production", 7, now)
    assert await store.set_label("missing", "production", 1, now) is None
    first = await store.get_version(name, 1)
    assert first is not None
    assert (first.template, first.variables, first.note) == (TEMPLATE, SCHEMA, "first")
    assert await store.get_version(name, 99) is None
    head = await store.get_prompt(name)
    assert head is not None
    assert (head.latest_version, head.labels) == (6, {"production": 6})
    assert name in [p.id for p in await store.list_prompts()]
