"""Graceful drain, end to end: a real `ai-gateway serve` process gets SIGTERM while SSE streams
and WebSocket requests are in flight against a slow emulator upstream.

What a user (and a load balancer) sees: the instance stops accepting connections at once (a new
request, or a readiness probe, is refused at the TCP level, which a load balancer retries
elsewhere safely, even for a POST); streams shorter than the drain time
finish normally; streams still running at the deadline end with an error event (SSE) or an
error message and a 1001 close (WebSocket), never silently; and every one of them has its
usage row in the database (SQLite, and PostgreSQL when reachable) once the process has exited.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from analytics_support import throwaway_database
from harness import EMULATOR_KEY, VENV_BIN, EmulatorServer, free_port, output, start_process

pytestmark = pytest.mark.integration

DRAIN_S = 3.0
SHORT_PAUSE_S = 1.0  # finishes well inside the drain time
LONG_PAUSE_S = 12.0  # still running at the deadline


def gateway_yaml(emu: EmulatorServer) -> str:
    upstream = f"api_base: '{emu.url}/v1', api_key: {EMULATOR_KEY}"
    return f"""
gateway: {{drain_timeout_s: {DRAIN_S}}}
streaming: {{keepalive_interval_s: 0}}
router: {{retries: 0}}
models:
  - {{name: short, provider: openai, model: gpt-4o-mini, {upstream}}}
  - {{name: long, provider: openai, model: gpt-4o, {upstream}}}
  - {{name: late, provider: openai, model: gpt-4.1, {upstream}}}
"""


def body(model: str, stream: bool = True) -> dict[str, Any]:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}


class SSEClient:
    """One streamed request on its own thread: its events, and when its first chunk came."""

    def __init__(self, url: str, model: str, rid: str) -> None:
        self.rid = rid
        self.first = threading.Event()
        self.events: list[str] = []
        self.status = 0
        self.body = b""
        self._pool = ThreadPoolExecutor(1)
        self.done: Future[None] = self._pool.submit(self._run, url, model)

    def _run(self, url: str, model: str) -> None:
        headers = {"x-request-id": self.rid}
        with httpx.stream("POST", url, json=body(model), headers=headers, timeout=60) as resp:
            self.status = resp.status_code
            if self.status != 200:
                self.body = resp.read()
            for line in resp.iter_lines():
                if line.startswith("data: "):
                    self.events.append(line[6:])
                    self.first.set()
        self._pool.shutdown(wait=False)

    def error(self) -> dict[str, Any] | None:
        last = json.loads(self.events[-1]) if self.events and self.events[-1] != "[DONE]" else {}
        return last.get("error")


async def socket_client(url: str, started: threading.Event, go: threading.Event) -> dict[str, Any]:
    """Two requests on one socket (short, long); once `go` is set, a third one."""
    got: dict[str, list[dict[str, Any]]] = {"ws-short": [], "ws-long": [], "ws-late": []}
    close_code = None
    async with websockets.connect(url) as ws:
        for rid, model in (("ws-short", "short"), ("ws-long", "long")):
            request = {"type": "request", "id": rid, "endpoint": "chat.completions"}
            await ws.send(json.dumps({**request, "body": body(model)}))
        late_sent = False
        try:
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 30))
                got[message["id"]].append(message)
                if got["ws-short"] and got["ws-long"]:
                    started.set()
                if go.is_set() and not late_sent:
                    late = {"type": "request", "id": "ws-late", "endpoint": "chat.completions"}
                    await ws.send(json.dumps({**late, "body": body("short")}))
                    late_sent = True
        except ConnectionClosed as closed:
            close_code = closed.rcvd.code if closed.rcvd is not None else None
    return {"messages": got, "close_code": close_code}


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
        return
    with throwaway_database() as url:
        yield url


def usage_rows(database: str | None, data_dir: Path) -> dict[str, tuple[int, str | None]]:
    sql = "SELECT client_request_id, status, error_code FROM usage_records"
    if database is None:
        with sqlite3.connect(data_dir / "analytics.db") as conn:
            rows = conn.execute(sql).fetchall()
    else:

        async def fetch() -> list[Any]:
            conn = await asyncpg.connect(database)
            try:
                return list(await conn.fetch(sql.replace("FROM ", "FROM ai_gateway.")))
            finally:
                await conn.close()

        rows = [tuple(r) for r in asyncio.run(fetch())]
    return {r[0]: (r[1], r[2]) for r in rows if r[0]}


def test_sigterm_drains_streams_and_records_every_one(
    emu: EmulatorServer, tmp_path: Path, database: str | None
) -> None:
    emu.add_faults(  # every short and long stream pauses after its first chunks
        *(
            {"kind": "pause", "model": m, "after_chunks": 2, "seconds": s, "count": 10}
            for m, s in (("gpt-4o-mini", SHORT_PAUSE_S), ("gpt-4o", LONG_PAUSE_S))
        ),
        # and this one has sent nothing yet at the deadline (a long time to first token)
        {"kind": "delay", "model": "gpt-4.1", "seconds": LONG_PAUSE_S, "count": 2},
    )
    config = tmp_path / "gateway.yaml"
    config.write_text(gateway_yaml(emu))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"AI_GATEWAY_DATA_DIR": str(tmp_path / "data"), "AI_GATEWAY_LOG_FORMAT": "json"}
    if database is not None:
        env["DATABASE_URL"] = database
    args = [str(VENV_BIN / "ai-gateway"), "serve", "--config", str(config), "--port", str(port)]
    with start_process(args, env=env) as proc:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, output(proc)
            try:
                if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the gateway did not become ready"
            time.sleep(0.1)

        url = f"{base}/v1/chat/completions"
        short = [SSEClient(url, "short", f"sse-short-{i}") for i in range(2)]
        long = [SSEClient(url, "long", f"sse-long-{i}") for i in range(2)]
        late = SSEClient(url, "late", "sse-late")
        json_pool = ThreadPoolExecutor(1)
        late_json = json_pool.submit(
            httpx.post,
            url,
            json=body("late", stream=False),
            headers={"x-request-id": "json-late"},
            timeout=60,
        )
        started, go = threading.Event(), threading.Event()
        ws_url = base.replace("http://", "ws://") + "/v1/ws"
        with ThreadPoolExecutor(1) as pool:
            socket = pool.submit(asyncio.run, socket_client(ws_url, started, go))
            for client in short + long:
                assert client.first.wait(15), f"{client.rid} did not start"
            assert started.wait(15), "the socket's requests did not start"
            for _ in range(100):  # the late ones have reached the upstream (which waits)
                late_ones = [r for r in emu.requests() if r["body"].get("model") == "gpt-4.1"]
                if len(late_ones) == 2:
                    break
                time.sleep(0.05)
            else:
                pytest.fail("the late request did not reach the upstream")

            proc.send_signal(signal.SIGTERM)
            sigterm = time.monotonic()

            # The listener closes at once: a new connection (a request, a probe) is refused.
            for _ in range(50):
                try:
                    httpx.get(f"{base}/health/ready", timeout=2)
                except httpx.ConnectError:
                    break
                time.sleep(0.02)
            else:
                pytest.fail("the draining instance still accepts connections")
            with pytest.raises(httpx.ConnectError):
                httpx.post(url, json=body("short", stream=False), timeout=5)
            go.set()  # a new request on the open socket

            for client in [*short, *long, late]:
                client.done.result(30)
            ended = time.monotonic() - sigterm
            answer = late_json.result(30)
            json_pool.shutdown()
            ws = socket.result(30)

        assert proc.wait(30) is not None
        log = output(proc)

    # Streams shorter than the drain finished; the longer ones ended with an error event.
    for client in short:
        assert client.status == 200
        assert client.events[-1] == "[DONE]", client.events
        assert client.error() is None
    for client in long:
        assert client.status == 200
        assert "[DONE]" not in client.events
        error = client.error()
        assert error is not None, client.events
        assert error["code"] == "server_shutting_down"
    assert DRAIN_S - 0.5 < ended < DRAIN_S + 5, ended
    # The stream that had sent nothing yet is answered with the HTTP error itself.
    assert late.status == 503
    assert json.loads(late.body)["error"]["code"] == "server_shutting_down"
    # So is a JSON answer still being generated.
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "server_shutting_down"

    # The socket: the short request finished, the late one was refused, the long one was
    # stopped with an error message, then the socket closed with 1001.
    messages = ws["messages"]
    assert messages["ws-short"][-1]["type"] == "done"
    assert messages["ws-late"][-1]["type"] == "error"
    assert messages["ws-late"][-1]["error"]["code"] == "server_shutting_down"
    assert messages["ws-long"][-1]["type"] == "error"
    assert messages["ws-long"][-1]["error"]["code"] == "server_shutting_down"
    assert ws["close_code"] == 1001

    # Every stream has its usage row; the ones the deadline stopped say why.
    rows = usage_rows(database, tmp_path / "data")
    for rid in ("sse-short-0", "sse-short-1", "ws-short"):
        assert rows.get(rid) == (200, None), (rid, rows)
    for rid in ("sse-long-0", "sse-long-1", "ws-long"):
        assert rid in rows, (rid, rows)
        assert rows[rid][1] == "server_shutting_down", (rid, rows)
    assert rows.get("sse-late") == (503, "server_shutting_down"), rows
    assert rows.get("json-late") == (503, "server_shutting_down"), rows
    assert '"draining"' in log
    assert '"drained"' in log
    assert "analytics_records_dropped" not in log

    # After the exit nothing listens.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/health", timeout=2)
