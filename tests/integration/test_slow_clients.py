"""Slow and silent clients against a real `ai-gateway serve` process, with raw sockets: header
and body read timeouts, idle connections closed, and a cap on open connections."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from conftest import EMULATOR_KEY
from harness import VENV_BIN, EmulatorServer, free_port, start_process, wait_http

MASTER = "sk-master-slow-clients-test-0000"
HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.5
CHAT = json.dumps({"model": "fast", "messages": [{"role": "user", "content": "hi"}]}).encode()


@contextlib.contextmanager
def serve(tmp: Path, emulator: EmulatorServer, **env: str) -> Iterator[str]:
    config = tmp / "gw.yaml"
    config.write_text(
        f"models:\n  - {{name: fast, provider: openai, model: gpt-4o-mini, "
        f"api_base: '{emulator.url}/v1', api_key: {EMULATOR_KEY}}}\n"
    )
    port = free_port()
    with start_process(
        [str(VENV_BIN / "ai-gateway"), "serve", "--config", str(config), "--port", str(port)],
        env={"AI_GATEWAY_MASTER_KEY": MASTER, "AI_GATEWAY_DATA_DIR": str(tmp / "data"), **env},
    ) as proc:
        wait_http(f"http://127.0.0.1:{port}/health", proc=proc)
        yield f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, emulator: EmulatorServer) -> Iterator[str]:
    with serve(
        tmp_path_factory.mktemp("slow"),
        emulator,
        AI_GATEWAY_HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S),
        AI_GATEWAY_BODY_TIMEOUT_S=str(BODY_TIMEOUT_S),
        AI_GATEWAY_KEEP_ALIVE_TIMEOUT_S="1",
    ) as address:
        yield address


def connect(address: str) -> socket.socket:
    host, port = address.split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (10 s at most)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def dribble(sock: socket.socket, data: bytes, every_s: float = 0.3) -> None:
    """Send one byte at a time until the server closes the connection or `data` runs out."""
    for i in range(len(data)):
        try:
            sock.sendall(data[i : i + 1])
        except (BrokenPipeError, ConnectionResetError):
            return
        time.sleep(every_s)


def response(raw: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return status, headers, json.loads(body)


def upstream_calls(emu: EmulatorServer) -> int:
    return len([r for r in emu.requests() if r["path"].startswith("/v1/")])


def test_a_silent_connection_is_closed_after_the_header_timeout(gateway: str) -> None:
    with connect(gateway) as sock:
        started = time.monotonic()
        assert read_all(sock) == b""  # closed without a word: it never asked anything
        assert time.monotonic() - started < HEADER_TIMEOUT_S + 2


def test_headers_sent_a_byte_at_a_time_get_408(gateway: str) -> None:
    with connect(gateway) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        dribble(sock, b"X-Slow: " + b"a" * 100)
        raw = read_all(sock)
        assert time.monotonic() - started < HEADER_TIMEOUT_S + 2
        status, headers, body = response(raw)
        assert status == 408
        assert headers["content-type"] == "application/json"
        assert headers["connection"] == "close"
        assert body["error"]["type"] == "invalid_request_error"
        assert body["error"]["code"] == "request_timeout"
        assert "header_timeout_s" in body["error"]["message"]


def test_an_authenticated_body_sent_slowly_gets_408_and_never_reaches_the_upstream(
    gateway: str, emu: EmulatorServer
) -> None:
    with connect(gateway) as sock:
        started = time.monotonic()
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + MASTER.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: "
            + str(len(CHAT)).encode()
            + b"\r\n\r\n"
        )
        dribble(sock, CHAT)
        raw = read_all(sock)
        assert time.monotonic() - started < BODY_TIMEOUT_S + 2
        status, headers, body = response(raw)
        assert status == 408, raw[:300]
        assert headers["connection"] == "close"
        assert "x-request-id" in headers
        assert body["error"]["code"] == "request_timeout"
        assert "body_timeout_s" in body["error"]["message"]
        assert upstream_calls(emu) == 0


def test_a_body_still_arriving_after_an_early_answer_closes_the_connection(gateway: str) -> None:
    with connect(gateway) as sock:
        started = time.monotonic()
        # No credential: 401 before the body is read; the rest of the body is not waited for.
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"
        )
        dribble(sock, b"x" * 100)
        raw = read_all(sock)
        assert time.monotonic() - started < 3
        assert response(raw)[0] == 401


def test_a_kept_alive_connection_cannot_be_held_a_byte_at_a_time(gateway: str) -> None:
    with connect(gateway) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        dribble(sock, b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: a\r\n" * 20)
        raw = read_all(sock)
        assert time.monotonic() - started < HEADER_TIMEOUT_S + 2
        assert response(raw)[0] == 408


def test_many_silent_sockets_are_all_closed(gateway: str) -> None:
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(connect(gateway)) for _ in range(300)]
        time.sleep(HEADER_TIMEOUT_S + 1)
        for sock in socks:
            sock.settimeout(2)
            assert read_all(sock) == b""
    assert httpx.get(f"http://{gateway}/health").status_code == 200


def test_ordinary_clients_are_unaffected(gateway: str) -> None:
    with openai.OpenAI(base_url=f"http://{gateway}/v1", api_key=MASTER, max_retries=0) as sdk:
        for _ in range(3):  # one kept-alive connection, with pauses under the keep-alive timeout
            reply = sdk.chat.completions.create(
                model="fast", messages=[{"role": "user", "content": "still fine"}]
            )
            assert "still fine" in (reply.choices[0].message.content or "")
            time.sleep(0.5)


def test_connections_past_the_cap_get_503(tmp_path: Path, emulator: EmulatorServer) -> None:
    with (
        serve(
            tmp_path, emulator, AI_GATEWAY_MAX_CONNECTIONS="5", AI_GATEWAY_HEADER_TIMEOUT_S="5"
        ) as address,
    ):
        with contextlib.ExitStack() as held:
            for _ in range(5):
                held.enter_context(connect(address))
            with connect(address) as sock:
                sock.sendall(
                    b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer x\r\n\r\n"
                )
                status, headers, body = response(read_all(sock))
        assert status == 503
        assert headers["retry-after"] == "1"
        assert body["error"]["code"] == "server_busy"
        assert "max_connections" in body["error"]["message"]
        time.sleep(0.2)
        assert httpx.get(f"http://{address}/health").status_code == 200
