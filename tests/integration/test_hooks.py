"""Hooks end to end: a real gateway on a real socket, the provider emulator, the official
`openai` SDK, and an operator's HTTP hook served by a real HTTP server on 127.0.0.1 that checks
the gateway's signature. A pre_request Python hook refuses a word (chat and streamed chat); an
HTTP hook's rewrite of the prompt reaches the upstream; a hook that fails goes on (fail open) or
refuses (fail closed) without stalling; on_chunk changes the streamed text; on_record gets the
finished request's record; each hook's time and failures are in /metrics."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from aiohttp import web

import hook_functions
from conftest import GatewayFactory, emulator_yaml
from harness import EmulatorServer, GatewayServer, LoopThread

pytestmark = pytest.mark.integration

SECRET = "hook-secret-4f1c9a"


class HookServer:
    """An operator's HTTP hook: checks the signature (HMAC-SHA256 of `<timestamp>.<body>`), then
    replaces "cats" by "dogs" in the user's messages. A bad signature gets 401."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self._thread = LoopThread("hook-server")
        self._runner, self.url = self._thread.run(self._start())

    async def _start(self) -> tuple[web.AppRunner, str]:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        return runner, f"http://127.0.0.1:{port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        stamp = request.headers["x-gateway-timestamp"]
        mac = hmac.new(SECRET.encode(), stamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
        signature = request.headers.get("x-gateway-signature", "")
        fresh = abs(time.time() - int(stamp)) < 300
        if not (hmac.compare_digest(signature, f"sha256={mac}") and fresh):
            self.bad_signatures += 1
            return web.json_response({"error": "bad signature"}, status=401)
        document = json.loads(raw)
        self.calls.append(document)
        body = document["body"]
        messages = [
            {**m, "content": m["content"].replace("cats", "dogs")} if m["role"] == "user" else m
            for m in body["messages"]
        ]
        return web.json_response({"action": "continue", "body": {**body, "messages": messages}})

    def stop(self) -> None:
        self._thread.run(self._runner.cleanup())
        self._thread.stop()


@pytest.fixture
def hook_server() -> Iterator[HookServer]:
    server = HookServer()
    yield server
    server.stop()


def hooks_yaml(emu: EmulatorServer, hooks: str) -> str:
    return emulator_yaml(emu, f"hooks:\n{hooks}")


def sdk(gw: GatewayServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0)


def ask(gw: GatewayServer, text: str, stream: bool = False) -> str:
    messages: Any = [{"role": "user", "content": text}]
    with sdk(gw) as client:
        if not stream:
            answer = client.chat.completions.create(model="fast", messages=messages)
            return answer.choices[0].message.content or ""
        chunks = client.chat.completions.create(model="fast", messages=messages, stream=True)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def upstream_prompts(emu: EmulatorServer) -> list[str]:
    sent = [r for r in emu.requests() if r["path"].endswith("/chat/completions")]
    return [r["body"]["messages"][-1]["content"] for r in sent]


@pytest.mark.parametrize("stream", [False, True])
def test_a_python_hook_refuses_prompts_with_a_word(
    emu: EmulatorServer, start_gateway: GatewayFactory, stream: bool
) -> None:
    gw = start_gateway(
        hooks_yaml(
            emu, "  - {name: words, point: pre_request, python: 'hook_functions:reject_word'}"
        )
    )
    with pytest.raises(openai.BadRequestError) as caught:
        ask(gw, "Tell me about PINEAPPLE pizza", stream=stream)
    assert caught.value.status_code == 400
    assert "Prompts about pineapple are not allowed here." in caught.value.message
    assert caught.value.code == "forbidden_word"
    assert upstream_prompts(emu) == []  # never sent
    assert ask(gw, "Tell me about pizza", stream=stream).startswith("Emulated reply to:")


@pytest.mark.parametrize("stream", [False, True])
def test_an_http_hook_s_rewrite_reaches_the_upstream(
    emu: EmulatorServer, start_gateway: GatewayFactory, hook_server: HookServer, stream: bool
) -> None:
    hook = (
        f"  - {{name: rewrite, point: pre_request, url: '{hook_server.url}', "
        f"secret: {SECRET}, timeout_s: 2, fail: closed}}"
    )
    gw = start_gateway(hooks_yaml(emu, hook))
    text = ask(gw, "I love cats a lot", stream=stream)
    assert text.startswith("Emulated reply to: I love dogs a lot")
    assert upstream_prompts(emu) == ["I love dogs a lot"]
    assert hook_server.bad_signatures == 0
    call = hook_server.calls[-1]
    assert (call["hook"], call["point"], call["model"], call["stream"]) == (
        "rewrite",
        "pre_request",
        "fast",
        stream,
    )
    assert call["caller"]["kind"] == "anonymous"


def test_an_http_hook_with_a_wrong_secret_fails_by_its_policy(
    emu: EmulatorServer, start_gateway: GatewayFactory, hook_server: HookServer
) -> None:
    hook = (
        f"  - {{name: badsig, point: pre_request, url: '{hook_server.url}', "
        "secret: not-the-secret, fail: closed}"
    )
    gw = start_gateway(hooks_yaml(emu, hook))
    with pytest.raises(openai.APIStatusError) as caught:
        ask(gw, "I love cats")
    assert caught.value.status_code == 503
    assert caught.value.code == "hook_failed"
    assert hook_server.bad_signatures == 1


def test_a_failing_hook_goes_on_when_open_and_refuses_when_closed(
    emu: EmulatorServer, start_gateway: GatewayFactory
) -> None:
    hooks = """\
  - {name: bug-open, point: pre_request, python: 'hook_functions:raises', fail: open}
  - {name: slow-open, point: pre_request, python: 'hook_functions:sleeps', timeout_s: 0.2}
"""
    gw = start_gateway(hooks_yaml(emu, hooks))
    started = time.monotonic()
    assert ask(gw, "hello there").startswith("Emulated reply to: hello there")
    assert time.monotonic() - started < 5  # the hook's timeout, not its 30 s sleep
    closed = start_gateway(
        hooks_yaml(
            emu,
            "  - {name: slow-closed, point: pre_request, python: 'hook_functions:sleeps', "
            "timeout_s: 0.2, fail: closed}",
        )
    )
    for stream in (False, True):
        with pytest.raises(openai.APIStatusError) as caught:
            ask(closed, "hello there", stream=stream)
        assert caught.value.status_code == 503
        assert caught.value.code == "hook_failed"
        assert "slow-closed" in caught.value.message
    metrics = httpx.get(f"{gw.url}/metrics").text
    assert (
        'ai_gateway_hook_failures_total{hook="bug-open",point="pre_request",policy="open",'
        'reason="error"} 1.0'
    ) in metrics
    assert (
        'ai_gateway_hook_failures_total{hook="slow-open",point="pre_request",policy="open",'
        'reason="timeout"} 1.0'
    ) in metrics
    assert 'ai_gateway_hook_seconds_count{hook="bug-open",point="pre_request"} 1.0' in metrics


def test_on_chunk_changes_the_streamed_text_and_post_response_the_answer(
    emu: EmulatorServer, start_gateway: GatewayFactory
) -> None:
    hooks = """\
  - {name: upper, point: on_chunk, python: 'hook_functions:upper_chunks'}
  - {name: sign, point: post_response, python: 'hook_functions:sign_answer'}
"""
    gw = start_gateway(hooks_yaml(emu, hooks))
    plain = ask(gw, "say something")
    assert plain.endswith(" [checked]")
    streamed = ask(gw, "say something", stream=True)
    assert streamed == plain.removesuffix(" [checked]").upper()


def test_on_record_gets_the_finished_request_s_record(
    emu: EmulatorServer, start_gateway: GatewayFactory
) -> None:
    hook_functions.RECORDS.clear()
    gw = start_gateway(
        hooks_yaml(emu, "  - {name: sink, point: on_record, python: 'hook_functions:keep_record'}")
    )
    with sdk(gw) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="fast", messages=[{"role": "user", "content": "count me"}]
        )
    request_id = raw.headers["x-gateway-request-id"]
    deadline = time.monotonic() + 5
    while not hook_functions.RECORDS and time.monotonic() < deadline:
        time.sleep(0.02)
    [record] = hook_functions.RECORDS
    assert record.request_id == request_id
    assert (record.model, record.status, record.route) == ("fast", 200, "chat")
    assert record.prompt_tokens > 0


def over_websocket(gw: GatewayServer, text: str) -> list[dict[str, Any]]:
    """The messages the WebSocket answers a streamed chat request with, up to `done` or
    `error`."""
    from websockets.sync.client import connect

    body = {"model": "fast", "messages": [{"role": "user", "content": text}], "stream": True}
    request = {"type": "request", "id": "r1", "endpoint": "chat.completions", "body": body}
    received: list[dict[str, Any]] = []
    with connect(f"ws://127.0.0.1:{gw.port}/v1/ws") as socket:
        socket.send(json.dumps(request))
        while not received or received[-1]["type"] not in ("done", "error"):
            received.append(json.loads(socket.recv(timeout=30)))
    return received


def test_hooks_apply_to_the_websocket_too(
    emu: EmulatorServer, start_gateway: GatewayFactory, hook_server: HookServer
) -> None:
    hooks = (
        "  - {name: words, point: pre_request, python: 'hook_functions:reject_word'}\n"
        f"  - {{name: rewrite, point: pre_request, url: '{hook_server.url}', "
        f"secret: {SECRET}, timeout_s: 2, fail: closed}}\n"
    )
    gw = start_gateway(hooks_yaml(emu, hooks))
    refused = over_websocket(gw, "Tell me about PINEAPPLE pizza")
    assert refused[-1]["type"] == "error"
    assert refused[-1]["id"] == "r1"
    assert refused[-1]["error"]["code"] == "forbidden_word"
    answered = over_websocket(gw, "I love cats a lot")
    text = "".join(
        m["data"]["choices"][0]["delta"].get("content") or ""
        for m in answered
        if m["type"] == "chunk" and m["data"]["choices"]
    )
    assert text.startswith("Emulated reply to: I love dogs a lot")
    assert upstream_prompts(emu) == ["I love dogs a lot"]
