"""Files and vector stores end to end: a real gateway on a socket (embedded Qdrant Edge under its
data directory, the built-in local embedding model, SQLite), called with the official `openai`
SDK, and the provider emulator as the upstream of chat requests that retrieve. Two users' keys:
each sees only its own files and stores; the master key sees all."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from conftest import GatewayFactory, emulator_yaml
from harness import EmulatorServer, GatewayServer

pytest.importorskip("sentence_transformers", reason="the 'local' extra is not installed")
pytestmark = pytest.mark.integration

MASTER = "sk-master-rag-51c2"
ADMIN = {"Authorization": f"Bearer {MASTER}"}

RUNBOOK = b"""# Quillfeather on-call runbook

## Restarting the ingest queue

When the ingest queue stalls, drain it with `qf-admin drain --grace 45s` and then restart the
workers one at a time. Never restart all workers at once: the lease table needs one live holder.

## Certificates

The edge certificates rotate every 60 days; the rotation job runs at 03:15 UTC on Sundays.
"""
BILLING = b"""Billing FAQ

Invoices are issued on the first business day of each month. Refunds for annual plans are
prorated by the day and reach the card within ten working days. Error code LRK-4471 means the
card issuer declined the charge; ask the customer to contact their bank.
"""


@pytest.fixture
def gw(emu: EmulatorServer, start_gateway: GatewayFactory) -> GatewayServer:
    extra = "rag:\n  limits: {max_file_bytes: 200000}\n"
    return start_gateway(emulator_yaml(emu, extra), master_key=MASTER)


def key_for(gw: GatewayServer, user: str) -> str:
    resp = httpx.post(f"{gw.url}/admin/keys", json={"user": user}, headers=ADMIN, timeout=10)
    assert resp.status_code == 201, resp.text
    key: str = resp.json()["key"]
    return key


@pytest.fixture
def keys(gw: GatewayServer) -> dict[str, str]:
    return {"alice": key_for(gw, "alice"), "bob": key_for(gw, "bob")}


def sdk(gw: GatewayServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0, timeout=60)


@pytest.fixture
def alice(gw: GatewayServer, keys: dict[str, str]) -> Iterator[openai.OpenAI]:
    with sdk(gw, keys["alice"]) as client:
        yield client


def upload(client: openai.OpenAI, name: str, data: bytes) -> str:
    return client.files.create(file=(name, io.BytesIO(data)), purpose="assistants").id


def wait_store(client: openai.OpenAI, store_id: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        store = client.vector_stores.retrieve(store_id)
        if store.status == "completed" or time.monotonic() > deadline:
            return store
        time.sleep(0.1)


def test_the_sdk_uploads_indexes_and_searches(alice: openai.OpenAI) -> None:
    runbook = upload(alice, "runbook.md", RUNBOOK)
    store = alice.vector_stores.create(name="ops", file_ids=[runbook])
    assert store.object == "vector_store"
    assert store.file_counts.total == 1
    billing = alice.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=("billing.txt", io.BytesIO(BILLING))
    )
    assert billing.status == "completed", billing.last_error
    assert wait_store(alice, store.id).file_counts.completed == 2

    page = alice.vector_stores.search(store.id, query="How often do edge certificates rotate?")
    first = page.data[0]
    assert first.filename == "runbook.md"
    assert "60 days" in first.content[0].text
    assert 0 < first.score <= 1
    found = alice.vector_stores.search(store.id, query="what does LRK-4471 mean", max_num_results=1)
    assert [hit.filename for hit in found.data] == ["billing.txt"]

    listed = alice.vector_stores.files.list(store.id)
    assert {f.id for f in listed.data} == {runbook, billing.id}
    assert alice.files.content(runbook).content == RUNBOOK


def test_another_user_gets_404_and_the_master_key_sees_all(
    gw: GatewayServer, keys: dict[str, str], alice: openai.OpenAI
) -> None:
    file_id = upload(alice, "runbook.md", RUNBOOK)
    store = alice.vector_stores.create(name="private", file_ids=[file_id])
    with sdk(gw, keys["bob"]) as bob:
        for call in (
            lambda: bob.vector_stores.retrieve(store.id),
            lambda: bob.vector_stores.search(store.id, query="certificates"),
            lambda: bob.files.retrieve(file_id),
            lambda: bob.files.content(file_id),
            lambda: bob.vector_stores.files.create(vector_store_id=store.id, file_id=file_id),
            lambda: bob.vector_stores.delete(store.id),
        ):
            with pytest.raises(openai.NotFoundError):
                call()
        assert [s.id for s in bob.vector_stores.list().data] == []
        # Bob cannot put Alice's file in a store of his own either.
        own = bob.vector_stores.create(name="bob's")
        with pytest.raises(openai.NotFoundError):
            bob.vector_stores.files.create(vector_store_id=own.id, file_id=file_id)
        answer = httpx.post(
            f"{gw.url}/v1/chat/completions",
            json={
                "model": "fast",
                "messages": [{"role": "user", "content": "certificates?"}],
                "rag": {"vector_store_ids": [store.id]},
            },
            headers={"Authorization": f"Bearer {keys['bob']}"},
            timeout=30,
        )
        assert answer.status_code == 404
        assert store.id in answer.json()["error"]["message"]
    with sdk(gw, MASTER) as master:
        assert store.id in {s.id for s in master.vector_stores.list().data}
        assert master.files.retrieve(file_id).filename == "runbook.md"


def test_a_chat_with_rag_reaches_the_upstream_with_the_passage(
    gw: GatewayServer, emu: EmulatorServer, alice: openai.OpenAI
) -> None:
    store = alice.vector_stores.create(name="ops", file_ids=[upload(alice, "runbook.md", RUNBOOK)])
    wait_store(alice, store.id)
    raw = alice.chat.completions.with_raw_response.create(
        model="fast",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "How do I drain the stalled ingest queue?"},
        ],
        extra_body={"rag": {"vector_store_ids": [store.id], "citations": True}},
    )
    sent = [r for r in emu.requests() if r["path"].endswith("/chat/completions")][-1]["body"]
    messages = sent["messages"]
    assert [m["role"] for m in messages] == ["system", "system", "user"]
    assert "qf-admin drain --grace 45s" in messages[1]["content"]
    assert "rag" not in sent
    header = raw.headers["x-gateway-citations"]
    assert header.startswith("file-")
    assert 'filename="runbook.md"' in header
    body = raw.http_response.json()
    assert body["citations"][0]["filename"] == "runbook.md"
    assert body["citations"][0]["vector_store_id"] == store.id


def test_a_file_search_tool_runs_on_the_gateway_for_any_provider(
    gw: GatewayServer, emu: EmulatorServer, alice: openai.OpenAI
) -> None:
    store = alice.vector_stores.create(name="ops", file_ids=[upload(alice, "faq.txt", BILLING)])
    wait_store(alice, store.id)
    stream = alice.chat.completions.create(
        model="fast",
        messages=[{"role": "user", "content": "What does error LRK-4471 mean?"}],
        tools=[{"type": "file_search", "vector_store_ids": [store.id]}],  # type: ignore[list-item]
        stream=True,
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    sent = [r for r in emu.requests() if r["path"].endswith("/chat/completions")][-1]["body"]
    assert "tools" not in sent
    assert "tool_choice" not in sent
    assert "issuer declined the charge" in sent["messages"][0]["content"]


def test_bad_input_gets_clear_errors_and_breaks_nothing(
    gw: GatewayServer, alice: openai.OpenAI
) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        upload(alice, "slides.pptx", b"PK\x03\x04 not for us")
    message = bad.value.body["message"]  # type: ignore[index]
    assert ".pptx" in message
    assert ".pdf" in message
    assert ".md" in message
    with pytest.raises(openai.APIStatusError) as big:
        upload(alice, "big.txt", b"x" * 200_001)
    assert big.value.status_code == 413
    store = alice.vector_stores.create(name="mixed")
    assert alice.vector_stores.search(store.id, query="anything").data == []
    corrupt = upload(alice, "broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage")
    good = upload(alice, "runbook.md", RUNBOOK)
    batch = alice.vector_stores.file_batches.create_and_poll(
        vector_store_id=store.id, file_ids=[corrupt, good]
    )
    assert batch.file_counts.failed == 1
    assert batch.file_counts.completed == 1
    failed = alice.vector_stores.files.retrieve(vector_store_id=store.id, file_id=corrupt)
    assert failed.status == "failed"
    assert failed.last_error is not None
    assert failed.last_error.code == "invalid_file"
    assert failed.last_error.message
    with pytest.raises(openai.NotFoundError):
        alice.vector_stores.retrieve("vs_" + "0" * 24)
    with pytest.raises(openai.NotFoundError):
        alice.files.retrieve("file-" + "0" * 24)
    with pytest.raises(openai.BadRequestError) as chunking:
        alice.vector_stores.files.create(
            vector_store_id=store.id,
            file_id=good,
            chunking_strategy={
                "type": "static",
                "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 150},
            },
        )
    assert "chunk_overlap_tokens" in chunking.value.body["message"]  # type: ignore[index]


def test_re_adding_a_file_is_idempotent_and_deleting_it_removes_its_passages(
    alice: openai.OpenAI,
) -> None:
    file_id = upload(alice, "runbook.md", RUNBOOK)
    store = alice.vector_stores.create(name="ops", file_ids=[file_id])
    wait_store(alice, store.id)
    again = alice.vector_stores.files.create(vector_store_id=store.id, file_id=file_id)
    assert again.status == "completed"
    assert alice.vector_stores.retrieve(store.id).file_counts.total == 1
    assert alice.vector_stores.search(store.id, query="certificates rotate").data
    alice.files.delete(file_id)
    assert alice.vector_stores.search(store.id, query="certificates rotate").data == []
    assert alice.vector_stores.retrieve(store.id).file_counts.total == 0


def test_code_generation_searches_the_stores_it_names(
    gw: GatewayServer, emu: EmulatorServer, keys: dict[str, str], alice: openai.OpenAI
) -> None:
    store = alice.vector_stores.create(name="ops", file_ids=[upload(alice, "runbook.md", RUNBOOK)])
    wait_store(alice, store.id)
    resp = httpx.post(
        f"{gw.url}/v1/code/generate",
        json={
            "instructions": "Write a shell script that drains the stalled ingest queue.",
            "language": "bash",
            "vector_store_ids": [store.id],
        },
        headers={"Authorization": f"Bearer {keys['alice']}"},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    assert 'filename="runbook.md"' in resp.headers["x-gateway-citations"]
    messages = [r for r in emu.requests() if r["path"].endswith("/chat/completions")][-1]["body"][
        "messages"
    ]
    assert [m["role"] for m in messages] == ["system", "system", "user"]
    assert "qf-admin drain --grace 45s" in messages[1]["content"]
    bob = httpx.post(
        f"{gw.url}/v1/code/generate",
        json={"instructions": "Drain the queue.", "vector_store_ids": [store.id]},
        headers={"Authorization": f"Bearer {keys['bob']}"},
        timeout=30,
    )
    assert bob.status_code == 404
