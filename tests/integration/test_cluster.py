"""The production topology on one machine (scripts/cluster): a real nginx, configured by
deploy/nginx.conf, in front of two real gateway processes sharing Redis and PostgreSQL, with the
provider emulator upstream. Through the balancer: the OpenAI SDK, a stream that arrives as it is
made, WebSockets, the client's address in the audit log, one user's rate limit across both
instances, and a kill -9 of one instance under load. The kill is the last test: the cluster is
shared by the module."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
import websockets

from ai_gateway.emulator.app import EmulatorSettings
from cluster_support import Cluster, run_cluster, running_cluster
from harness import EMULATOR_KEY, EmulatorServer

pytestmark = pytest.mark.integration

MASTER = "sk-master-cluster-7f3a"
USER_RPS, USER_BURST = 10, 5
# The slow upstream: a non-streamed answer after 0.3 s; a stream's chunks 0.1 s apart.
SLOW_LATENCY_S, SLOW_CHUNK_S = 0.3, 0.1


def _config(fast: EmulatorServer, slow: EmulatorServer) -> str:
    return f"""
router: {{retries: 0}}
models:
  - {{name: fast, provider: openai, model: gpt-4o-mini, api_base: "{fast.url}/v1",
     api_key: {EMULATOR_KEY}}}
  - {{name: slow, provider: openai, model: gpt-4o-mini, api_base: "{slow.url}/v1",
     api_key: {EMULATOR_KEY}}}
security:
  rate_limits:
    user: {{rps: {USER_RPS}, burst: {USER_BURST}}}
"""


@pytest.fixture(scope="module")
def cluster(
    emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    slow = EmulatorServer(EmulatorSettings(latency_s=SLOW_LATENCY_S, chunk_delay_s=SLOW_CHUNK_S))
    run_dir = tmp_path_factory.mktemp("cluster")
    try:
        with running_cluster(run_dir, _config(emulator, slow), master_key=MASTER) as running:
            yield running
    finally:
        slow.stop()


def _sdk(cluster: Cluster, key: str = MASTER) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{cluster.url}/v1", api_key=key, max_retries=0, timeout=30)


def _lines(cluster: Cluster, request_ids: set[str]) -> dict[str, dict[str, Any]]:
    """nginx's access-log line of each request id (the x-request-id the test sent). nginx
    writes a line once the response is sent, so the last one may trail the client a little."""
    deadline = time.monotonic() + 5
    while True:
        lines = {
            line["request_id"]: line
            for line in cluster.access_log()
            if line["request_id"] in request_ids
        }
        if len(lines) == len(request_ids) or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def _wait_for_rows(
    cluster: Cluster, ids: set[str], required: set[str] | None = None, timeout: float = 10
) -> set[str]:
    """Which of `ids` have a usage row, once all of `required` (default: all) have one, or
    `timeout` has passed."""
    required = ids if required is None else required
    deadline = time.monotonic() + timeout
    while True:
        found = cluster.usage_rows(sorted(ids))
        if required <= found or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def test_sdk_through_the_balancer_reaches_both_instances(cluster: Cluster) -> None:
    ids: dict[str, str] = {}  # our x-request-id -> the gateway's request id
    with _sdk(cluster) as client:
        for n in range(6):
            rid = f"sdk-{uuid.uuid4().hex}"
            raw = client.chat.completions.with_raw_response.create(
                model="fast",
                messages=[{"role": "user", "content": f"hello {n}"}],
                extra_headers={"x-request-id": rid},
            )
            reply = raw.parse()
            assert reply.choices[0].message.content
            assert raw.headers["x-request-id"] == rid  # the client's id, through nginx
            ids[rid] = raw.headers["x-gateway-request-id"]
    lines = _lines(cluster, set(ids))
    served = {cluster.instance_at(line["upstream_addr"]) for line in lines.values()}
    assert served == {"gateway-1", "gateway-2"}
    assert {line["gateway_request_id"] for line in lines.values()} == set(ids.values())
    # Each answer has its usage row in the shared PostgreSQL, whichever instance gave it.
    assert _wait_for_rows(cluster, set(ids.values())) == set(ids.values())


def test_a_stream_arrives_through_nginx_as_it_is_made(cluster: Cluster) -> None:
    arrivals: list[float] = []
    with _sdk(cluster) as client:
        start = time.monotonic()
        stream = client.chat.completions.create(
            model="slow",
            stream=True,
            messages=[{"role": "user", "content": "count slowly for me please"}],
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                arrivals.append(time.monotonic() - start)
    # The upstream sends a chunk every 0.1 s: unbuffered, they arrive spread over the stream's
    # life; buffered by nginx, they would all arrive together at its end.
    assert len(arrivals) >= 8
    assert arrivals[-1] - arrivals[0] >= (len(arrivals) - 1) * SLOW_CHUNK_S * 0.6
    assert arrivals[0] < arrivals[-1] - 0.5


def test_websocket_through_nginx(cluster: Cluster) -> None:
    base = cluster.url.replace("http://", "ws://")

    async def one(path: str) -> list[dict[str, Any]]:
        headers = {"Authorization": f"Bearer {MASTER}"}
        async with websockets.connect(base + path, additional_headers=headers) as ws:
            body = {
                "model": "fast",
                "stream": True,
                "messages": [{"role": "user", "content": "hi"}],
            }
            await ws.send(
                json.dumps(
                    {"type": "request", "id": "1", "endpoint": "chat.completions", "body": body}
                )
            )
            messages = [json.loads(await asyncio.wait_for(ws.recv(), 10))]
            while messages[-1]["type"] == "chunk":
                messages.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
            return messages

    for path in ("/ai/ws", "/v1/ws"):
        messages = asyncio.run(one(path))
        assert messages[-1]["type"] == "done", messages[-1]
        text = "".join(
            c["delta"].get("content") or "" for m in messages[:-1] for c in m["data"]["choices"]
        )
        assert text.startswith("Emulated reply to: hi")


def test_the_audit_log_has_the_clients_address_not_nginxs(cluster: Cluster) -> None:
    # nginx appends the address it sees (127.0.0.1) to X-Forwarded-For; the instance trusts
    # 127.0.0.1 (FORWARDED_ALLOW_IPS) and takes the address before it.
    resp = httpx.get(
        f"{cluster.url}/v1/models",
        headers={"Authorization": "Bearer sk-not-a-key", "X-Forwarded-For": "198.51.100.7"},
    )
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "invalid_api_key"
    deadline = time.monotonic() + 10
    seen: list[Any] = []
    while time.monotonic() < deadline:
        audit = httpx.get(
            f"{cluster.url}/admin/audit",
            params={"action": "auth.failed"},
            headers={"Authorization": f"Bearer {MASTER}"},
        )
        assert audit.status_code == 200, audit.text
        seen = [r["source_ip"] for r in audit.json()["data"]]
        if "198.51.100.7" in seen:
            return
        time.sleep(0.3)
    raise AssertionError(f"no auth.failed record from 198.51.100.7; source_ip seen: {seen}")


@dataclass
class Sent:
    rid: str
    started: float  # time.time()
    status: int  # 0: no HTTP answer, or a stream cut short
    gateway_id: str | None = None
    error: str | None = None


def test_one_users_rate_limit_holds_across_both_instances(cluster: Cluster) -> None:
    admin = {"Authorization": f"Bearer {MASTER}"}
    created = httpx.post(
        f"{cluster.url}/admin/keys", json={"user": f"rl-{uuid.uuid4().hex[:8]}"}, headers=admin
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    rate, total = 30.0, 60  # three times the user's rate, for two seconds
    body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}
    clients = [httpx.Client(timeout=10) for _ in range(6)]  # one per thread: each its own

    def send(n: int, t0: float) -> Sent:
        time.sleep(max(0.0, t0 + n / rate - time.monotonic()))
        rid = f"rl-{uuid.uuid4().hex}"
        started = time.time()
        resp = clients[n % len(clients)].post(
            f"{cluster.url}/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {key}", "x-request-id": rid},
        )
        if resp.status_code == 429:
            assert resp.json()["error"]["code"] == "rate_limit_exceeded"
        return Sent(rid, started, resp.status_code)

    t0 = time.monotonic()
    try:
        with ThreadPoolExecutor(len(clients)) as pool:
            results = list(pool.map(lambda n: send(n, t0), range(total)))
    finally:
        for client in clients:
            client.close()
    elapsed = max(r.started for r in results) - min(r.started for r in results)
    admitted = [r for r in results if r.status == 200]
    refused = [r for r in results if r.status == 429]
    assert len(admitted) + len(refused) == total, [r.status for r in results]
    # GCRA: over T seconds at most burst + rps * T, however many instances count.
    ceiling = USER_BURST + USER_RPS * elapsed + 1
    assert len(admitted) <= ceiling, (len(admitted), elapsed)
    assert len(admitted) >= 0.6 * ceiling, (len(admitted), elapsed)
    # Both instances admitted and refused: the limit is one budget, not one per instance.
    lines = _lines(cluster, {r.rid for r in results})
    by_status: dict[int, set[str]] = {200: set(), 429: set()}
    for line in lines.values():
        by_status[line["status"]].add(cluster.instance_at(line["upstream_addr"]))
    assert by_status == {200: {"gateway-1", "gateway-2"}, 429: {"gateway-1", "gateway-2"}}


def _load_worker(
    cluster: Cluster, stream: bool, stop_at: float, out: list[Sent], lock: threading.Lock
) -> None:
    body = {"model": "slow", "stream": stream, "messages": [{"role": "user", "content": "go"}]}
    headers = {"Authorization": f"Bearer {MASTER}"}
    with httpx.Client(timeout=30) as client:
        while time.monotonic() < stop_at:
            sent = Sent(f"kill-{uuid.uuid4().hex}", time.time(), 0)
            try:
                with client.stream(
                    "POST",
                    f"{cluster.url}/v1/chat/completions",
                    json=body,
                    headers={**headers, "x-request-id": sent.rid},
                ) as resp:
                    text = resp.read().decode()
                    sent.gateway_id = resp.headers.get("x-gateway-request-id")
                    complete = not stream or text.rstrip().endswith("data: [DONE]")
                    sent.status = resp.status_code if complete else 0
                    if resp.status_code != 200:
                        sent.error = text
            except httpx.HTTPError as exc:  # a stream cut by the dying instance
                sent.error = repr(exc)
            with lock:
                out.append(sent)


def test_kill_9_of_one_instance_costs_only_its_in_flight_requests(cluster: Cluster) -> None:
    victim = cluster.instances["gateway-1"]
    out: list[Sent] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + 4.0
    workers = [
        threading.Thread(target=_load_worker, args=(cluster, stream, stop_at, out, lock))
        for stream in [False] * 6 + [True] * 2
    ]
    for worker in workers:
        worker.start()
    time.sleep(1.5)
    killed_at = time.time()
    os.kill(victim["pid"], signal.SIGKILL)
    for worker in workers:
        worker.join(30)

    lines = _lines(cluster, {s.rid for s in out})
    assert len(lines) == len(out)
    failed = [s for s in out if s.status != 200]
    # Only requests that gateway-1 was running when it died failed: each went to it alone (a
    # POST already sent is never retried), and started before the kill.
    for sent in failed:
        line = lines[sent.rid]
        assert line["upstream_addr"] == f"127.0.0.1:{victim['port']}", (sent, line)
        assert line["msec"] - line["request_time"] <= killed_at + 0.05, (sent, line)
        if sent.error and sent.error.startswith("{"):  # nginx's own error, as JSON
            assert json.loads(sent.error)["error"]["code"] == "gateway_instance_unavailable"
    assert len(failed) <= len(workers)
    # Everything that started after the kill was answered, by gateway-2.
    after = [s for s in out if s.started > killed_at + 0.05]
    assert after, "no request was sent after the kill"
    assert all(s.status == 200 for s in after), [(s.status, s.error) for s in after]
    assert {cluster.instance_at(lines[s.rid]["upstream_addr"].split(",")[-1]) for s in after} == {
        "gateway-2"
    }

    # A POST that could not reach gateway-1 (connection refused, once nginx tries it again
    # after fail_timeout, 5 s counted in whole seconds) is moved to gateway-2: nginx retries
    # what cannot have been sent.
    time.sleep(max(0.0, killed_at + 5.0 - time.time()))
    retried = []
    with httpx.Client(timeout=10) as client:
        while time.time() < killed_at + 7.5:
            rid = f"retry-{uuid.uuid4().hex}"
            resp = client.post(
                f"{cluster.url}/v1/chat/completions",
                json={"model": "fast", "messages": [{"role": "user", "content": "x"}]},
                headers={"Authorization": f"Bearer {MASTER}", "x-request-id": rid},
            )
            assert resp.status_code == 200
            retried.append(rid)
            time.sleep(0.2)
    moved = [
        line for line in _lines(cluster, set(retried)).values() if "," in line["upstream_addr"]
    ]
    assert moved, "nginx never tried the dead instance again"
    assert all(line["upstream_status"].replace(" ", "") == "502,200" for line in moved)

    # Usage rows: every answer from gateway-2 has one. gateway-1's writer flushes every 0.5 s,
    # so a kill -9 loses the rows of what it answered in its last moments (a SIGTERM does not):
    # answers older than a second before the kill must all be there.
    answered = {s.gateway_id: lines[s.rid] for s in out if s.status == 200 and s.gateway_id}
    must = {
        gid
        for gid, line in answered.items()
        if cluster.instance_at(line["upstream_addr"].split(",")[-1]) == "gateway-2"
        or line["msec"] < killed_at - 1.0
    }
    found = _wait_for_rows(cluster, set(answered), must)
    assert must <= found, sorted(must - found)
    lost = set(answered) - found
    print(
        f"\nkill -9 under load: {len(out)} requests, {len(failed)} failed (in flight on "
        f"gateway-1), {len(after)} sent after the kill all answered; usage rows lost with "
        f"gateway-1's last flush: {len(lost)} of {len(answered)} answered"
    )


def test_status_reports_the_dead_instance(cluster: Cluster) -> None:
    # After the kill above (module order): status tells which process is gone.
    status = cluster.status()
    if status["probes"]["gateway-1"]["alive"]:
        pytest.skip("runs after the kill test (module order)")
    assert status["running"] is False
    assert status["probes"]["gateway-2"]["ok"] is True
    assert status["probes"]["nginx"]["ok"] is True


def test_restart_brings_the_killed_instance_back(cluster: Cluster) -> None:
    # After the kill test (module order): `restart` starts gateway-1 again on its port, and
    # nginx sends it requests again.
    before = cluster.instances["gateway-1"]
    run_cluster(["restart", "gateway-1", "--dir", str(cluster.dir)], cluster.env)
    status = cluster.status()
    assert status["running"] is True, status["probes"]
    after = {p["name"]: p for p in status["instances"]}["gateway-1"]
    assert after["port"] == before["port"]
    assert after["pid"] != before["pid"]
    # nginx takes it back once fail_timeout (5 s) has passed since its last failure.
    served: set[str] = set()
    deadline = time.monotonic() + 10
    with httpx.Client(timeout=10) as client:
        while served != {"gateway-1", "gateway-2"} and time.monotonic() < deadline:
            rid = f"back-{uuid.uuid4().hex}"
            resp = client.post(
                f"{cluster.url}/v1/chat/completions",
                json={"model": "fast", "messages": [{"role": "user", "content": "x"}]},
                headers={"Authorization": f"Bearer {MASTER}", "x-request-id": rid},
            )
            assert resp.status_code == 200
            line = _lines(cluster, {rid})[rid]
            served.add(cluster.instance_at(line["upstream_addr"].split(",")[-1]))
            time.sleep(0.2)
    assert served == {"gateway-1", "gateway-2"}
