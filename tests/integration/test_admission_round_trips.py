"""Admission through real gateways sharing a real Redis: one round trip admits a request (all its
limits and its budget), one settles it, counted by Redis itself (MONITOR); a request refused by
one scope takes nothing from the others; two instances share leases and a budget; with Redis
down, budgets fail open or closed as configured."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from collections import Counter
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from conftest import GatewayFactory, emulator_yaml
from harness import EmulatorServer, GatewayServer

pytestmark = pytest.mark.integration

MASTER = "sk-master-roundtrips-5b1e"
ADMIN = {"Authorization": f"Bearer {MASTER}"}
BODY = {"model": "fast", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 8}
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
LIMITS = "security: {rate_limits: {user: {rps: 1000, burst: 1000}}}"


def new_key(gw: GatewayServer, **fields: Any) -> dict[str, str]:
    created = httpx.post(f"{gw.url}/admin/keys", json={"user": "paula", **fields}, headers=ADMIN)
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['key']}"}


def chat(gw: GatewayServer, headers: dict[str, str], **extra: Any) -> httpx.Response:
    return httpx.post(
        f"{gw.url}/v1/chat/completions", json={**BODY, **extra}, headers=headers, timeout=30
    )


class Monitor:
    """Redis's MONITOR on a socket of its own: every command a client sent whose arguments
    name `prefix` (this test's keys), as (command, first argument)."""

    def __init__(self, prefix: str) -> None:
        parts = urlsplit(REDIS_URL)
        self._prefix = prefix
        self._sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379))
        if parts.password:
            user = parts.username or "default"
            self._sock.sendall(_command("AUTH", user, parts.password))
            assert self._sock.recv(100).startswith(b"+OK")
        self._sock.sendall(b"MONITOR\r\n")
        self._buffer = b""
        while not self._buffer.startswith(b"+OK\r\n"):
            self._buffer += self._sock.recv(100)
        self._buffer = self._buffer[5:]
        self.commands: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._stopped = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with contextlib.suppress(OSError):
            while not self._stopped:
                data = self._sock.recv(65536)
                if not data:
                    return
                self._buffer += data
                *lines, self._buffer = self._buffer.split(b"\r\n")
                for line in lines:
                    text = line.decode(errors="replace")
                    # A script's own commands are shown too, from "lua": not round trips.
                    if self._prefix in text and " lua] " not in text:
                        quoted = text.split('"')
                        with self._lock:
                            self.commands.append((quoted[1].upper(), quoted[3]))

    def take(self) -> list[tuple[str, str]]:
        """The commands seen so far (and forget them)."""
        with self._lock:
            taken, self.commands = self.commands, []
        return taken

    def close(self) -> None:
        self._stopped = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(5)


def _command(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        out.append(f"${len(arg.encode())}\r\n{arg}\r\n".encode())
    return b"".join(out)


def settled(monitor: Monitor, expected: int, timeout: float = 5.0) -> list[tuple[str, str]]:
    """Wait until Redis has seen at least `expected` commands of the test (a stream settles
    just after its last event), then a little more for any that should not be there."""
    deadline = time.monotonic() + timeout
    while len(monitor.commands) < expected and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    return monitor.take()


def test_one_round_trip_admits_and_one_settles(
    start_gateway: GatewayFactory, emu: EmulatorServer, redis_prefix: str
) -> None:
    """A key with a request rate, a token limit, a concurrency limit and a budget, its user
    with a request rate: five checks, one EVALSHA; leases, tokens and spend, one more."""
    gw = start_gateway(emulator_yaml(emu, LIMITS), master_key=MASTER)
    key = new_key(
        gw, rps=1000, tpm=1_000_000, max_concurrent=5, budget_usd="100", budget_period="day"
    )
    monitor = Monitor(redis_prefix)
    try:
        assert chat(gw, key).status_code == 200  # loads the scripts (EVAL after NOSCRIPT)
        settled(monitor, 2)
        for _ in range(5):
            resp = chat(gw, key)
            assert resp.status_code == 200
            assert resp.headers["x-ratelimit-limit-requests"] == "500"  # the key's burst
        plain = settled(monitor, 10)
        for _ in range(5):
            with httpx.stream(
                "POST",
                f"{gw.url}/v1/chat/completions",
                json={**BODY, "stream": True},
                headers=key,
                timeout=30,
            ) as stream:
                assert stream.status_code == 200
                assert "data: [DONE]" in "".join(stream.iter_lines())
        streamed = settled(monitor, 10)
    finally:
        monitor.close()
    for seen in (plain, streamed):
        assert [command for command, _ in seen] == ["EVALSHA"] * 10, seen
        scripts = Counter(sha for _, sha in seen)
        assert len(scripts) == 2, "one script admits, another settles"
        assert set(scripts.values()) == {5}
        admit_sha = seen[0][1]
        assert [sha == admit_sha for _, sha in seen] == [True, False] * 5


def test_a_refusal_by_the_user_takes_nothing_from_the_key(
    start_gateway: GatewayFactory, emu: EmulatorServer, redis_prefix: str
) -> None:
    """The key's rate (3 at once) is checked before the user's concurrency (1): requests the
    user's limit refuses must leave the key's three requests untouched."""
    config = "security: {rate_limits: {users: {paula: {max_concurrent: 1}}}}"
    gw = start_gateway(emulator_yaml(emu, config), master_key=MASTER)
    key = new_key(gw, rps=0.01, burst=3)
    emu.add_faults({"kind": "delay", "seconds": 1.5, "count": 1})

    async def slow_and_four_more() -> list[int]:
        async with httpx.AsyncClient(base_url=gw.url, headers=key, timeout=30) as client:
            slow = asyncio.create_task(client.post("/v1/chat/completions", json=BODY))
            await asyncio.sleep(0.5)
            others = [(await client.post("/v1/chat/completions", json=BODY)) for _ in range(4)]
            for other in others:
                assert "1 concurrent requests" in other.json()["error"]["message"]
            return [(await slow).status_code] + [r.status_code for r in others]

    assert asyncio.run(slow_and_four_more()) == [200, 429, 429, 429, 429]
    after = [chat(gw, key) for _ in range(3)]
    assert [r.status_code for r in after] == [200, 200, 429]
    assert "0.01 requests per second" in after[2].json()["error"]["message"]
    assert after[2].headers["x-ratelimit-limit-requests"] == "3"


def test_two_instances_share_leases(
    start_gateway: GatewayFactory, emu: EmulatorServer, redis_prefix: str
) -> None:
    a = start_gateway(emulator_yaml(emu, LIMITS), master_key=MASTER)
    b = start_gateway(emulator_yaml(emu, LIMITS), master_key=MASTER)
    key = new_key(a, max_concurrent=2)
    emu.add_faults({"kind": "delay", "seconds": 1.0, "count": 2})

    async def four_at_once() -> list[int]:
        async with httpx.AsyncClient(headers=key, timeout=30) as client:
            replies = await asyncio.gather(
                *[client.post(f"{gw.url}/v1/chat/completions", json=BODY) for gw in (a, b, a, b)]
            )
        return sorted(r.status_code for r in replies)

    assert asyncio.run(four_at_once()) == [200, 200, 429, 429]
    assert [chat(gw, key).status_code for gw in (a, b, a, b)] == [200] * 4, "released"


def test_two_instances_share_a_budget(
    start_gateway: GatewayFactory, emu: EmulatorServer, redis_prefix: str
) -> None:
    a = start_gateway(emulator_yaml(emu, LIMITS), master_key=MASTER)
    b = start_gateway(emulator_yaml(emu, LIMITS), master_key=MASTER)
    cost = Decimal(chat(a, new_key(a)).headers["x-gateway-cost-usd"])
    assert cost > 0
    key = new_key(a, budget_usd=str(cost * 3 + cost / 2), budget_period="day")
    replies = [chat(gw, key) for gw in (a, b, a, b, a, b)]
    assert [r.status_code for r in replies] == [200, 200, 200, 200, 402, 402]
    error = replies[5].json()["error"]
    assert error["code"] == "budget_exceeded"
    assert f"spent {(cost * 4).normalize():f} USD" in error["message"]


@pytest.mark.parametrize("mode", ["fail_open", "fail_closed"])
def test_redis_down_budgets_fail_open_or_closed(
    start_gateway: GatewayFactory,
    emu: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    config = f"security: {{rate_limits: {{user: {{}}, redis_failure: {mode}}}}}"
    gw = start_gateway(emulator_yaml(emu, config), master_key=MASTER)
    key = new_key(
        gw, budget_usd="0.000000000001", budget_period="day"
    )  # one pico-dollar: used up by one request
    replies = [chat(gw, key) for _ in range(3)]
    if mode == "fail_open":
        # Served: the budget cannot be read, nor the spend charged (each is logged).
        assert [r.status_code for r in replies] == [200, 200, 200]
    else:
        assert [r.status_code for r in replies] == [503, 503, 503]
        assert "Budgets cannot be checked" in replies[0].json()["error"]["message"]
    limited = new_key(gw, rps=100)
    statuses = {chat(gw, limited).status_code for _ in range(3)}
    assert statuses == ({200} if mode == "fail_open" else {503})
