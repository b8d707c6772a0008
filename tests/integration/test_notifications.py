"""Notifications end to end: real gateways on real sockets send to a real HTTP receiver on
127.0.0.1, which checks each webhook's HMAC signature; budgets shared through real Redis."""

from __future__ import annotations

import json
import socketserver
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from ai_gateway.notify.channels import SIGNATURE_HEADER, verify
from conftest import GatewayFactory, emulator_yaml
from harness import EmulatorServer, GatewayServer, chat, dep

pytestmark = pytest.mark.integration

MASTER = "sk-master-notify-5e1f"
ADMIN = {"Authorization": f"Bearer {MASTER}"}
SECRET = "whsec-notify-test-8c2d"
BODY = {"model": "fast", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 8}


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)

    def signed(self) -> bool:
        return verify(SECRET, self.headers.get(SIGNATURE_HEADER, ""), self.body, now=time.time())


class Receiver:
    """An HTTP server that records every POST. `/flaky` answers 503 to its first two requests,
    `/down` always 500, anything else 200."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.received.append(
                        Received(
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            time.monotonic(),
                        )
                    )
                    seen = sum(r.path == self.path for r in receiver.received)
                fail = self.path == "/down" or (self.path == "/flaky" and seen <= 2)
                self.send_response(503 if self.path == "/flaky" and fail else 500 if fail else 200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def wait_for(self, path: str, count: int, timeout: float = 15) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.at(path)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{path}: {len(self.at(path))} of {count} requests arrived")
            time.sleep(0.02)
        return self.at(path)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


def notifications(receiver: Receiver, rules: str, extra: str = "") -> str:
    return f"""
notifications:
  channels:
    hook: {{type: webhook, url: "{receiver.url}/hook", secret: "{SECRET}"}}
    slack: {{type: slack, url: "{receiver.url}/slack"}}
    flaky: {{type: webhook, url: "{receiver.url}/flaky", secret: "{SECRET}",
             retry: {{retries: 3, backoff_s: 0.2}}}}
    down: {{type: webhook, url: "{receiver.url}/down", retry: {{retries: 1, backoff_s: 0.1}}}}
  rules:
{rules}
{extra}
"""


def deliveries(gw: GatewayServer) -> list[dict[str, Any]]:
    answer = httpx.get(f"{gw.url}/admin/notifications", headers=ADMIN, timeout=10)
    assert answer.status_code == 200
    data: list[dict[str, Any]] = answer.json()["data"]
    return data


def test_two_instances_send_one_signed_webhook_when_a_key_crosses_80_percent(
    start_gateway: GatewayFactory, emu: EmulatorServer, receiver: Receiver, redis_prefix: str
) -> None:
    yaml = emulator_yaml(
        emu,
        "security: {rate_limits: {user: {rps: 100000, burst: 100000}}}\n"
        + notifications(receiver, "    - {events: [budget.threshold], channels: [hook]}"),
    )
    first = start_gateway(yaml, master_key=MASTER)
    second = start_gateway(yaml, master_key=MASTER)
    probe = httpx.post(f"{first.url}/admin/keys", json={"user": "pia"}, headers=ADMIN).json()
    cost = Decimal(
        httpx.post(
            f"{first.url}/v1/chat/completions",
            json=BODY,
            headers={"Authorization": f"Bearer {probe['key']}"},
        ).headers["x-gateway-cost-usd"]
    )
    key = httpx.post(
        f"{first.url}/admin/keys",
        json={"user": "pia", "budget_usd": str(cost * 10), "budget_period": "day"},
        headers=ADMIN,
    ).json()
    caller = {"Authorization": f"Bearer {key['key']}"}
    for n in range(9):  # spend 1..9 tenths of the budget, alternating instances
        gw = (first, second)[n % 2]
        assert httpx.post(f"{gw.url}/v1/chat/completions", json=BODY, headers=caller).is_success
    receiver.wait_for("/hook", 2)  # 50% and 80%
    time.sleep(1.0)  # room for a duplicate to arrive, if there were one
    hooks = receiver.at("/hook")
    at_80 = [r for r in hooks if r.json()["data"]["threshold_percent"] == 80]
    assert len(at_80) == 1
    assert len(hooks) == 2  # 50% once too; 100% not reached
    delivery = at_80[0]
    assert delivery.signed()
    assert delivery.headers["x-gateway-event"] == "budget.threshold"
    payload = delivery.json()
    assert payload["type"] == "budget.threshold"
    assert payload["subject"] == f"key:{key['id']}"
    assert payload["data"]["scope"] == "key"
    assert payload["data"]["name"] == key["id"]
    assert Decimal(payload["data"]["budget_usd"]) == cost * 10
    assert Decimal(payload["data"]["spent_usd"]) == cost * 8
    assert payload["data"]["period"] == "day"
    listed = deliveries(first) + deliveries(second)
    assert [d["outcome"] for d in listed if d["event_id"] == payload["id"]] == ["delivered"]


def test_a_circuit_opening_sends_circuit_opened(
    start_gateway: GatewayFactory, emu: EmulatorServer, receiver: Receiver
) -> None:
    rule = "    - {events: [circuit.opened, circuit.closed], channels: [hook, slack]}"
    config = f"""
router:
  retries: 2
  breaker: {{failures: 2, window_s: 60, cooldown_s: 60}}
models:
  - name: pair
    deployments:
      - {dep(emu, "gpt-a", weight=1000)}
      - {dep(emu, "gpt-b", weight=0.001)}
{notifications(receiver, rule)}
"""
    gw = start_gateway(config)
    emu.add_faults({"kind": "status", "status": 500, "model": "gpt-a", "count": 2})
    for _ in range(4):
        assert chat(gw, "pair").status_code == 200  # failed over to gpt-b
    [hook] = receiver.wait_for("/hook", 1)
    assert hook.signed()
    payload = hook.json()
    assert payload["type"] == "circuit.opened"
    assert payload["data"] == {"deployment": "pair/0", "state": "open"}
    [slack] = receiver.wait_for("/slack", 1)
    assert slack.json() == {"text": "[circuit.opened] Circuit opened for deployment pair/0."}


def test_the_test_endpoint_delivers_through_every_channel(
    start_gateway: GatewayFactory, emu: EmulatorServer, receiver: Receiver
) -> None:
    yaml = emulator_yaml(emu, notifications(receiver, "    - {events: ['*'], channels: [hook]}"))
    gw = start_gateway(yaml, master_key=MASTER)
    answer = httpx.post(
        f"{gw.url}/admin/notifications/test",
        json={"channel": "hook", "message": "hello ops"},
        headers=ADMIN,
        timeout=30,
    )
    assert answer.status_code == 200
    [delivery] = answer.json()["data"]
    assert delivery["outcome"] == "delivered"
    assert delivery["status"] == 200
    [hook] = receiver.at("/hook")
    assert hook.signed()
    assert hook.json()["type"] == "test"
    assert hook.json()["data"] == {"message": "hello ops"}
    everything = httpx.post(f"{gw.url}/admin/notifications/test", headers=ADMIN, timeout=30)
    outcomes = {d["channel"]: d["outcome"] for d in everything.json()["data"]}
    assert outcomes == {
        "hook": "delivered",
        "slack": "delivered",
        "flaky": "failed",
        "down": "failed",
    }  # the test sends once, without retries
    [slack] = receiver.at("/slack")
    assert slack.json() == {"text": "[test] Test notification from the AI gateway: it works"}
    missing = httpx.post(
        f"{gw.url}/admin/notifications/test", json={"channel": "nope"}, headers=ADMIN
    )
    assert missing.status_code == 404
    assert httpx.post(f"{gw.url}/admin/notifications/test").status_code == 401


def test_a_failing_webhook_is_retried_with_backoff_and_its_outcome_listed(
    start_gateway: GatewayFactory, emu: EmulatorServer, receiver: Receiver
) -> None:
    yaml = emulator_yaml(
        emu,
        "security: {rate_limits: {models: {fast: {rps: 0.01, burst: 1}}}}\n"
        + notifications(
            receiver,
            "    - {events: [ratelimit.exceeded], channels: [flaky, down]}",
            "  ratelimit: {count: 3, window_s: 60}",
        ),
    )
    gw = start_gateway(yaml)
    statuses = [chat(gw, "fast").status_code for _ in range(4)]
    assert statuses == [200, 429, 429, 429]
    flaky = receiver.wait_for("/flaky", 3)
    assert [r.signed() for r in flaky] == [True, True, True]
    assert flaky[1].at - flaky[0].at >= 0.2  # backoff 0.2 s, then 0.4 s
    assert flaky[2].at - flaky[1].at >= 0.4
    assert flaky[2].json()["type"] == "ratelimit.exceeded"
    assert flaky[2].json()["data"] == {
        "scope": "model",
        "name": "fast",
        "limit": "rps",
        "refusals": 3,
        "window_s": 60.0,
    }
    receiver.wait_for("/down", 2)
    deadline = time.monotonic() + 10
    while len(listed := deliveries(gw)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    by_channel = {d["channel"]: d for d in listed}
    assert by_channel["flaky"]["outcome"] == "delivered"
    assert by_channel["flaky"]["attempts"] == 3
    assert by_channel["flaky"]["status"] == 200
    assert by_channel["down"]["outcome"] == "failed"
    assert by_channel["down"]["attempts"] == 2
    assert by_channel["down"]["status"] == 500
    assert by_channel["down"]["error"] == "the receiver answered 500"
    metrics = httpx.get(f"{gw.url}/metrics").text
    sent = (
        'ai_gateway_notifications_total{channel="%s",event="ratelimit.exceeded",outcome="%s"} 1.0'
    )
    assert sent % ("flaky", "delivered") in metrics
    assert sent % ("down", "failed") in metrics
    assert "ai_gateway_notifications_dropped_total 0.0" in metrics


class SMTPReceiver:
    """The least of an SMTP server (RFC 5321's commands smtplib sends, no TLS), on 127.0.0.1;
    it keeps each message's DATA."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        receiver = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.wfile.write(b"220 test ESMTP\r\n")
                while line := self.rfile.readline():
                    verb = line.split(b" ", 1)[0].split(b":", 1)[0].strip().upper()
                    if verb == b"EHLO":
                        self.wfile.write(b"250 test\r\n")
                    elif verb == b"DATA":
                        self.wfile.write(b"354 go ahead\r\n")
                        data = b""
                        while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                            data += chunk
                        receiver.messages.append(data)
                        self.wfile.write(b"250 queued\r\n")
                    elif verb == b"QUIT":
                        self.wfile.write(b"221 bye\r\n")
                        return
                    else:  # HELO, MAIL FROM, RCPT TO, RSET, NOOP
                        self.wfile.write(b"250 ok\r\n")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_email_channel_sends_over_smtp(
    start_gateway: GatewayFactory, emu: EmulatorServer, receiver: Receiver
) -> None:
    smtp = SMTPReceiver()
    try:
        mail = (
            f"    mail: {{type: email, host: 127.0.0.1, port: {smtp.port}, tls: none, "
            "from: gw@example.com, to: [ops@example.com]}"
        )
        yaml = emulator_yaml(
            emu, notifications(receiver, "    - {events: ['*'], channels: [mail]}")
        ).replace("  rules:\n", mail + "\n  rules:\n")
        gw = start_gateway(yaml, master_key=MASTER)
        answer = httpx.post(
            f"{gw.url}/admin/notifications/test", json={"channel": "mail"}, headers=ADMIN
        )
        [delivery] = answer.json()["data"]
        assert delivery["outcome"] == "delivered"
        [message] = smtp.messages
        assert b"Subject: [ai-gateway] test: gateway" in message
        assert b"To: ops@example.com" in message
        assert b'"type": "test"' in message
    finally:
        smtp.stop()
