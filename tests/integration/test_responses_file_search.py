"""The Responses API's file_search tool on the gateway's own vector stores: a real gateway
(embedded Qdrant Edge, the built-in local embedding model, SQLite), the official `openai` SDK,
and the provider emulator upstream. The passages reach the upstream in the prompt, the output
starts with a `file_search_call` item (its results with `include`), streamed too, and a store
of another user is a 404."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from conftest import GatewayFactory, emulator_yaml
from harness import EmulatorServer, GatewayServer

pytest.importorskip("sentence_transformers", reason="the 'local' extra is not installed")
pytestmark = pytest.mark.integration

MASTER = "sk-master-responses-rag-9d3f"
RUNBOOK = b"""# Quillfeather on-call runbook

When the ingest queue stalls, drain it with `qf-admin drain --grace 45s` and then restart the
workers one at a time. The edge certificates rotate every 60 days.
"""


@pytest.fixture
def gw(emu: EmulatorServer, start_gateway: GatewayFactory) -> GatewayServer:
    return start_gateway(emulator_yaml(emu), master_key=MASTER)


@pytest.fixture
def alice(gw: GatewayServer) -> Iterator[openai.OpenAI]:
    key = key_for(gw, "alice")
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0, timeout=60) as c:
        yield c


def key_for(gw: GatewayServer, user: str) -> str:
    admin = {"Authorization": f"Bearer {MASTER}"}
    resp = httpx.post(f"{gw.url}/admin/keys", json={"user": user}, headers=admin, timeout=10)
    assert resp.status_code == 201, resp.text
    key: str = resp.json()["key"]
    return key


def indexed_store(client: openai.OpenAI) -> str:
    file_id = client.files.create(file=("runbook.md", io.BytesIO(RUNBOOK)), purpose="assistants").id
    store = client.vector_stores.create(name="ops", file_ids=[file_id])
    deadline = time.monotonic() + 60
    while client.vector_stores.retrieve(store.id).status != "completed":
        assert time.monotonic() < deadline, "the file was not indexed in time"
        time.sleep(0.1)
    return store.id


def test_file_search_runs_on_the_gateways_vector_stores(
    gw: GatewayServer, alice: openai.OpenAI, emu: EmulatorServer
) -> None:
    store_id = indexed_store(alice)
    tool = {"type": "file_search", "vector_store_ids": [store_id]}
    response = alice.responses.create(
        model="fast",
        input="How do I drain the stalled ingest queue?",
        tools=[tool],  # type: ignore[list-item]
        include=["file_search_call.results"],
    )
    searched, message = response.output
    assert searched.type == "file_search_call"
    assert searched.queries == ["How do I drain the stalled ingest queue?"]
    assert searched.results is not None
    assert searched.results[0].filename == "runbook.md"
    assert "qf-admin drain" in (searched.results[0].text or "")
    assert message.type == "message"
    sent = emu.requests()[-1]["body"]
    assert "qf-admin drain --grace 45s" in json.dumps(sent["messages"])
    assert "tools" not in sent  # the gateway ran the search; no one upstream sees the tool

    without = alice.responses.create(model="fast", input="certificates?", tools=[tool])  # type: ignore[list-item]
    assert without.output[0].type == "file_search_call"
    assert without.output[0].results is None  # not asked for

    with alice.responses.stream(model="fast", input="certificates?", tools=[tool]) as stream:  # type: ignore[list-item]
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.file_search_call.completed" in kinds
    assert [o.type for o in final.output] == ["file_search_call", "message"]

    bob_key = key_for(gw, "bob")
    with (
        openai.OpenAI(base_url=f"{gw.url}/v1", api_key=bob_key, max_retries=0) as bob,
        pytest.raises(openai.NotFoundError),
    ):
        bob.responses.create(model="fast", input="drain?", tools=[tool])  # type: ignore[list-item]
