"""The WebSocket endpoint (/ai/ws, /v1/ws) on a real gateway, with the provider emulator (and a
slow upstream for cancellation) behind it: several requests on one socket, cancel, the same
text as over SSE, JSON answers, embeddings, code generation, the three ways to authenticate,
bad messages, an oversized one, a client that stops reading, a rate-limited key, and the
endpoint turned off."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from conftest import GatewayFactory, emulator_yaml
from harness import EmulatorServer, GatewayServer, SlowSSEUpstream

pytestmark = pytest.mark.integration

MASTER = "sk-master-websocket-5d1e"


def ws_url(gw: GatewayServer, prefix: str = "/v1") -> str:
    return gw.url.replace("http://", "ws://") + prefix + "/ws"


def chat_body(content: str, model: str = "fast", stream: bool = True) -> dict[str, Any]:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": content}]}


def request(rid: str, body: dict[str, Any], endpoint: str = "chat.completions") -> str:
    return json.dumps({"type": "request", "id": rid, "endpoint": endpoint, "body": body})


async def recv(ws: Any, timeout: float = 10) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return message


def sse_text(gw: GatewayServer, content: str, headers: dict[str, str] | None = None) -> str:
    parts = []
    with httpx.stream(
        "POST",
        f"{gw.url}/v1/chat/completions",
        json=chat_body(content),
        headers=headers,
        timeout=30,
    ) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("data: {"):
                for choice in json.loads(line[6:])["choices"]:
                    parts.append(choice["delta"].get("content") or "")
    return "".join(parts)


def chunk_text(messages: list[dict[str, Any]]) -> str:
    return "".join(
        choice["delta"].get("content") or ""
        for m in messages
        if m["type"] == "chunk"
        for choice in m["data"]["choices"]
    )


@pytest.fixture
def slow() -> Iterator[SlowSSEUpstream]:
    upstream = SlowSSEUpstream(chunks=50, interval=0.2)
    yield upstream
    upstream.stop()


def test_three_streams_on_one_socket_one_cancelled(
    emu: EmulatorServer, start_gateway: GatewayFactory, slow: SlowSSEUpstream
) -> None:
    extra = (
        "  - {name: slow, provider: openai, model: slow, "
        f"api_base: '{slow.base}', api_key: sk-slow-123456}}\n"
    )
    gw = start_gateway(emulator_yaml(emu, extra))
    prompts = {"a": "tell me about sockets", "c": "and about queues, please"}

    async def run() -> dict[str, list[dict[str, Any]]]:
        got: dict[str, list[dict[str, Any]]] = {"a": [], "b": [], "c": []}
        async with websockets.connect(ws_url(gw)) as ws:
            await ws.send(request("b", chat_body("slow one", model="slow")))
            await ws.send(request("a", chat_body(prompts["a"])))
            await ws.send(request("c", chat_body(prompts["c"])))
            finished: set[str] = set()
            while finished != {"a", "b", "c"}:
                message = await recv(ws)
                got[message["id"]].append(message)
                if message["id"] == "b" and len(got["b"]) == 1:
                    assert message["type"] == "chunk"  # the slow stream has started: cancel it
                    await ws.send(json.dumps({"type": "cancel", "id": "b"}))
                if message["type"] in ("done", "error", "response"):
                    finished.add(message["id"])
        return got

    got = asyncio.run(run())
    # 50 chunks x 0.2 s if the gateway kept reading: the cancel closed the upstream request.
    assert slow.closed.wait(3), "the cancelled request was left running upstream"
    assert got["b"][-1]["type"] == "error"
    assert got["b"][-1]["error"]["code"] == "request_cancelled"
    for rid in ("a", "c"):
        messages = got[rid]
        assert [m["type"] for m in messages[:-1]] == ["chunk"] * (len(messages) - 1)
        assert messages[-1]["type"] == "done"
        assert messages[-1]["usage"]["completion_tokens"] > 0
        assert chunk_text(messages) == sse_text(gw, prompts[rid])
        assert chunk_text(messages)


def test_json_answers_embeddings_and_code(
    emu: EmulatorServer, start_gateway: GatewayFactory
) -> None:
    gw = start_gateway(emulator_yaml(emu))

    async def run() -> list[dict[str, Any]]:
        async with websockets.connect(ws_url(gw, "/ai")) as ws:
            await ws.send(request("1", chat_body("hello", stream=False)))
            first = await recv(ws)
            await ws.send(request("2", {"model": "embed", "input": ["a", "b"]}, "embeddings"))
            second = await recv(ws)
            code = {"instructions": "Write a function that adds two numbers.", "language": "python"}
            await ws.send(request("3", code, "code.generate"))
            third = await recv(ws)
            await ws.send(request("4", {**code, "stream": True}, "code.generate"))
            streamed = [await recv(ws)]
            while streamed[-1]["type"] == "chunk":
                streamed.append(await recv(ws))
            return [first, second, third, *streamed]

    chat, embeddings, code, *streamed = asyncio.run(run())
    assert (chat["type"], chat["id"]) == ("response", "1")
    assert chat["data"]["object"] == "chat.completion"
    assert chat["data"]["choices"][0]["message"]["content"]
    assert (embeddings["type"], embeddings["id"]) == ("response", "2")
    assert [len(e["embedding"]) > 0 for e in embeddings["data"]["data"]] == [True, True]
    assert (code["type"], code["data"]["object"]) == ("response", "code.generation")
    assert streamed[-1]["type"] == "done"
    assert streamed[-1]["usage"]["completion_tokens"] > 0
    events = [m["data"] for m in streamed[:-1]]
    assert {e["type"] for e in events[:-1]} == {"delta"}
    assert events[-1]["type"] == "result"
    assert events[-1]["object"] == "code.generation"


@pytest.fixture
def authed(emu: EmulatorServer, start_gateway: GatewayFactory) -> GatewayServer:
    return start_gateway(emulator_yaml(emu), master_key=MASTER)


async def one_answer(ws: Any) -> dict[str, Any]:
    await ws.send(request("x", chat_body("hi", stream=False)))
    return await recv(ws)


def test_authentication_by_header_subprotocol_or_first_message(authed: GatewayServer) -> None:
    async def run() -> None:
        headers = {"Authorization": f"Bearer {MASTER}"}
        async with websockets.connect(ws_url(authed), additional_headers=headers) as ws:
            assert (await one_answer(ws))["type"] == "response"
        protocol = f"bearer.{MASTER}"
        async with websockets.connect(ws_url(authed), subprotocols=[protocol]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == protocol
            assert (await one_answer(ws))["type"] == "response"
        async with websockets.connect(ws_url(authed)) as ws:
            await ws.send(json.dumps({"type": "auth", "token": MASTER}))
            assert (await one_answer(ws))["type"] == "response"

    asyncio.run(run())


def test_refused_without_a_valid_credential(authed: GatewayServer) -> None:
    async def run() -> None:
        bad = {"Authorization": "Bearer sk-wrong"}
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(ws_url(authed), additional_headers=bad):
                pass
        assert refused.value.response.status_code == 401
        assert json.loads(refused.value.response.body)["error"]["type"] == "authentication_error"
        # Opened without one: the first message must be `auth`.
        async with websockets.connect(ws_url(authed)) as ws:
            answer = await one_answer(ws)
            assert answer["type"] == "error"
            assert answer["error"]["code"] == "missing_api_key"
            with pytest.raises(ConnectionClosed):
                await recv(ws)
            assert ws.close_code == 1008
        async with websockets.connect(ws_url(authed)) as ws:
            await ws.send(json.dumps({"type": "auth", "token": "sk-wrong"}))
            assert (await recv(ws))["error"]["type"] == "authentication_error"
            with pytest.raises(ConnectionClosed):
                await recv(ws)
        # An unknown path under /v1 is refused before it opens, as before.
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(authed.url.replace("http", "ws") + "/v1/nowhere"):
                pass
        assert refused.value.response.status_code == 401

    asyncio.run(run())


def test_bad_messages_get_errors_and_the_socket_stays_open(
    emu: EmulatorServer, start_gateway: GatewayFactory
) -> None:
    gw = start_gateway(emulator_yaml(emu))

    async def run() -> None:
        async with websockets.connect(ws_url(gw)) as ws:
            await ws.send("{not json")
            assert (await recv(ws))["error"]["code"] == "invalid_message"
            await ws.send(json.dumps({"type": "dance", "id": "d1"}))
            error = await recv(ws)
            assert (error["id"], error["error"]["code"]) == ("d1", "unknown_type")
            await ws.send(json.dumps({"type": "request", "id": "e1", "endpoint": "images"}))
            error = await recv(ws)
            assert (error["id"], error["error"]["code"]) == ("e1", "unknown_endpoint")
            await ws.send(request("v1", {"model": "fast", "messages": "nope"}))
            error = await recv(ws)
            assert (error["id"], error["error"]["type"]) == ("v1", "invalid_request_error")
            await ws.send(request("m1", chat_body("hi", model="no-such-model")))
            error = await recv(ws)
            assert (error["id"], error["error"]["code"]) == ("m1", "model_not_found")
            await ws.send(json.dumps({"type": "ping"}))
            assert await recv(ws) == {"type": "pong"}
            assert (await one_answer(ws))["type"] == "response"

    asyncio.run(run())


def test_an_oversized_message_closes_with_1009(
    emu: EmulatorServer, start_gateway: GatewayFactory
) -> None:
    gw = start_gateway(emulator_yaml(emu, "websocket: {max_message_bytes: 2048}\n"))

    async def run() -> None:
        async with websockets.connect(ws_url(gw)) as ws:
            assert (await one_answer(ws))["type"] == "response"  # a small one is fine
            await ws.send(request("big", chat_body("x" * 4000)))
            with pytest.raises(ConnectionClosed):
                await recv(ws)
            assert ws.close_code == 1009

    asyncio.run(run())


def test_a_rate_limited_key_gets_the_429_error(authed: GatewayServer) -> None:
    admin = {"Authorization": f"Bearer {MASTER}"}
    created = httpx.post(
        f"{authed.url}/admin/keys", json={"user": "bob", "rps": 1, "burst": 1}, headers=admin
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]

    async def run() -> list[dict[str, Any]]:
        headers = {"Authorization": f"Bearer {key}"}
        async with websockets.connect(ws_url(authed), additional_headers=headers) as ws:
            for n in range(4):
                await ws.send(request(f"r{n}", chat_body("hi", stream=False)))
            return [await recv(ws) for _ in range(4)]

    answers = asyncio.run(run())
    errors = [a["error"] for a in answers if a["type"] == "error"]
    assert any(a["type"] == "response" for a in answers)
    assert errors
    assert {(e["type"], e["code"]) for e in errors} == {("rate_limit_error", "rate_limit_exceeded")}


def test_turned_off_an_upgrade_gets_a_403(
    emu: EmulatorServer, start_gateway: GatewayFactory
) -> None:
    gw = start_gateway(emulator_yaml(emu, "websocket: {enabled: false}\n"))

    async def run() -> None:
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(ws_url(gw)):
                pass
        response = refused.value.response
        assert response.status_code == 403
        assert json.loads(response.body)["error"]["code"] == "websocket_disabled"

    asyncio.run(run())


def test_a_client_that_stops_reading_is_closed_with_4008_and_its_upstream_call_cancelled(
    emu: EmulatorServer, start_gateway: GatewayFactory
) -> None:
    # An upstream that streams without end, as fast as the gateway reads.
    endless = SlowSSEUpstream(chunks=10_000_000, interval=0)
    extra = (
        "  - {name: endless, provider: openai, model: endless, "
        f"api_base: '{endless.base}', api_key: sk-endless-123456}}\n"
        "websocket: {send_timeout_s: 0.4}\n"
    )
    gw = start_gateway(emulator_yaml(emu, extra))

    async def run() -> tuple[int | None, list[str]]:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills soon
        sock.connect(("127.0.0.1", gw.port))
        # max_queue=1: the client stops reading the socket once one message waits unread; no
        # compression, else the repetitive chunks take megabytes of buffers to fill.
        connect = websockets.connect(ws_url(gw), sock=sock, max_queue=1, compression=None)
        async with connect as ws:
            await ws.send(request("r", chat_body("go on forever", model="endless")))
            await asyncio.sleep(0.1)
            assert not endless.closed.is_set()
            # Nothing is read: the gateway's sends wait, then it gives up on this client.
            assert await asyncio.to_thread(endless.closed.wait, 10), "upstream left running"
            kinds = []
            try:
                while True:
                    kinds.append((await recv(ws))["type"])
            except ConnectionClosed:
                return ws.close_code, kinds

    try:
        code, kinds = asyncio.run(run())
    finally:
        endless.stop()
    assert code == 4008
    assert kinds
    assert set(kinds) == {"chunk"}  # cut off mid-stream: no done, no error message


@pytest.mark.parametrize("compression", [False, True])
def test_permessage_deflate_only_when_configured(
    emu: EmulatorServer, start_gateway: GatewayFactory, compression: bool
) -> None:
    gw = start_gateway(
        emulator_yaml(emu, f"websocket: {{compression: {str(compression).lower()}}}\n")
    )

    async def run() -> str | None:
        async with websockets.connect(ws_url(gw)) as ws:  # the client offers permessage-deflate
            assert (await one_answer(ws))["type"] == "response"
            assert ws.response is not None
            return ws.response.headers.get("Sec-WebSocket-Extensions")

    negotiated = asyncio.run(run())
    assert (negotiated is not None and "permessage-deflate" in negotiated) == compression
