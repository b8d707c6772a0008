"""RAG across the two instances of scripts/cluster: nginx in front of two gateway processes that
share PostgreSQL (files, stores, jobs), the Qdrant server emulator `up` starts (vectors) and one
folder of file bytes. With the official `openai` SDK through nginx: files uploaded to one
instance are indexed by the other, and searches and chats on either find their passages."""

from __future__ import annotations

import io
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from analytics_support import unavailable
from cluster_support import CLUSTER, NGINX, REDIS_URL, Cluster, cluster_env, running_cluster
from harness import EMULATOR_KEY, EmulatorServer, free_port

pytestmark = pytest.mark.integration

MASTER = "sk-master-cluster-rag-3c9e"
RUNBOOK = b"""# Quillfeather on-call runbook

When the ingest queue stalls, drain it with `qf-admin drain --grace 45s`, then restart the
workers one at a time. Error ZQX-9081 means the spool disk is full: rotate the spool first.
"""
BILLING = b"""Billing FAQ

Invoices are issued on the first business day of each month. Error code LRK-4471 means the card
issuer declined the charge; ask the customer to contact their bank.
"""


def _config(upstream: EmulatorServer) -> str:
    # The provider emulator's embeddings (deterministic, meaningless vectors) keep the instances
    # light; the keyword half of the hybrid ranking is what finds each passage.
    return f"""
router: {{retries: 0}}
models:
  - {{name: fast, provider: openai, model: gpt-4o-mini, api_base: "{upstream.url}/v1",
     api_key: {EMULATOR_KEY}}}
  - {{name: embed, provider: openai, model: text-embedding-3-small,
     api_base: "{upstream.url}/v1", api_key: {EMULATOR_KEY}}}
rag: {{embedding_model: embed}}
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[EmulatorServer]:
    server = EmulatorServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cluster(
    upstream: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    run_dir = tmp_path_factory.mktemp("cluster-rag")
    with running_cluster(run_dir, _config(upstream), master_key=MASTER) as running:
        yield running


def _served(cluster: Cluster, rid: str) -> str:
    """The instance that answered the request sent with x-request-id `rid`."""
    deadline = time.monotonic() + 5
    while True:  # nginx writes the line once the answer is sent
        for line in cluster.access_log():
            if line["request_id"] == rid:
                return cluster.instance_at(line["upstream_addr"].split(",")[-1])
        assert time.monotonic() < deadline, f"no access-log line for {rid}"
        time.sleep(0.1)


def _rid(tag: str) -> dict[str, str]:
    return {"x-request-id": f"{tag}-{uuid.uuid4().hex}"}


def _last_chat(upstream: EmulatorServer, marker: str) -> dict[str, Any]:
    for request in reversed(upstream.requests(limit=20)):
        if request["path"].endswith("/chat/completions") and marker in json.dumps(request["body"]):
            body: dict[str, Any] = request["body"]
            return body
    raise AssertionError(f"no chat request upstream with {marker!r}")


def test_rag_works_whichever_instance_a_request_reaches(
    cluster: Cluster, upstream: EmulatorServer
) -> None:
    status = cluster.status()
    assert status["probes"]["qdrant"]["ok"] is True, status["probes"]
    qdrant = status["qdrant"]["url"]
    client = openai.OpenAI(base_url=f"{cluster.url}/v1", api_key=MASTER, max_retries=0, timeout=60)
    with client:
        # Two uploads in a row: round robin puts them on different instances, and the one
        # instance that takes the batch below indexes both, so it reads bytes the other wrote.
        uploads = {}
        for name, data in (("runbook.md", RUNBOOK), ("billing.txt", BILLING)):
            headers = _rid("upload")
            made = client.files.create(
                file=(name, io.BytesIO(data)), purpose="assistants", extra_headers=headers
            )
            uploads[made.id] = _served(cluster, headers["x-request-id"])
        assert set(uploads.values()) == {"gateway-1", "gateway-2"}

        store = client.vector_stores.create(name="ops")
        batch = client.vector_stores.file_batches.create_and_poll(
            vector_store_id=store.id, file_ids=list(uploads), poll_interval_ms=200
        )
        assert batch.status == "completed", batch
        assert batch.file_counts.completed == 2, batch.file_counts

        searched: set[str] = set()
        # Each query's words are in one file only: the dense half of the ranking is noise here.
        for query, filename, passage in (
            ("ZQX-9081 spool", "runbook.md", "spool disk is full"),
            ("LRK-4471 declined", "billing.txt", "issuer declined the charge"),
            ("stalled ingest queue drain", "runbook.md", "qf-admin drain --grace 45s"),
            ("invoices business day", "billing.txt", "first business day"),
        ):
            headers = _rid("search")
            page = client.vector_stores.search(
                store.id, query=query, max_num_results=1, extra_headers=headers
            )
            assert [hit.filename for hit in page.data] == [filename], (query, page.data)
            assert passage in page.data[0].content[0].text
            searched.add(_served(cluster, headers["x-request-id"]))
        assert searched == {"gateway-1", "gateway-2"}

        chatted: set[str] = set()
        headers = _rid("chat-rag")
        raw = client.chat.completions.with_raw_response.create(
            model="fast",
            messages=[{"role": "user", "content": "What does ZQX-9081 mean?"}],
            extra_body={"rag": {"vector_store_ids": [store.id], "citations": True}},
            extra_headers=headers,
        )
        chatted.add(_served(cluster, headers["x-request-id"]))
        assert 'filename="runbook.md"' in raw.headers["x-gateway-citations"]
        assert raw.http_response.json()["citations"][0]["vector_store_id"] == store.id
        sent = _last_chat(upstream, "ZQX-9081 means the spool disk is full")
        assert "rag" not in sent

        headers = _rid("chat-tool")
        answer = client.chat.completions.create(
            model="fast",
            messages=[{"role": "user", "content": "What does error LRK-4471 mean?"}],
            tools=[{"type": "file_search", "vector_store_ids": [store.id]}],  # type: ignore[list-item]
            extra_headers=headers,
        )
        assert answer.choices[0].message.content
        chatted.add(_served(cluster, headers["x-request-id"]))
        sent = _last_chat(upstream, "issuer declined the charge")
        assert "tools" not in sent
        assert chatted == {"gateway-1", "gateway-2"}

    # The vectors are in the Qdrant emulator, and the bytes in the one shared folder.
    collections = httpx.get(f"{qdrant}/collections", timeout=10).json()["result"]["collections"]
    assert [c["name"] for c in collections if c["name"].startswith("ai_gateway_rag_")]
    shared = cluster.dir / "rag-files"
    assert sorted(p.name for p in shared.iterdir()) == sorted(uploads)
    for name in ("gateway-1", "gateway-2"):
        assert not (cluster.dir / name / "data" / "rag").exists()


def test_up_stops_at_once_when_the_qdrant_server_given_is_unreachable(tmp_path: Path) -> None:
    if not Path(NGINX).is_file():
        unavailable(f"nginx is not installed ({NGINX}); scripts/test installs it")
    closed = free_port()  # nothing listens there
    run_dir = tmp_path / "run"
    argv = [str(CLUSTER), "up", "--dir", str(run_dir), "--port", str(free_port())]
    argv += ["--nginx", NGINX, "--qdrant-url", f"http://:qk-secret-5@127.0.0.1:{closed}"]
    done = subprocess.run(
        argv, env=cluster_env(REDIS_URL=REDIS_URL), capture_output=True, text=True, timeout=60
    )
    if "Redis is not reachable" in done.stderr or "PostgreSQL is not reachable" in done.stderr:
        unavailable(done.stderr.strip())
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"Qdrant is not reachable at 127.0.0.1:{closed} (QDRANT_URL)" in done.stderr
    assert "qk-secret-5" not in done.stderr
    assert not run_dir.exists()  # nothing started, nothing left
