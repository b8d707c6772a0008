"""Response chunking end to end: a real gateway streaming the provider emulator's scripted
answer over SSE (the official SDK) and over the WebSocket, regrouped into sentences or lines:
each chunk but the last ends a sentence (a line), and the text is the same as raw."""

from __future__ import annotations

import base64
import json
from typing import Any

import openai
import pytest
from websockets.sync.client import connect

from conftest import GatewayFactory, emulator_yaml
from harness import EmulatorServer, GatewayServer

pytestmark = pytest.mark.integration

ANSWER = "First sentence here. Second one, a bit longer? Third!\nA new line\nand the end"


def scripted(text: str) -> str:
    return f"[[reply:{base64.urlsafe_b64encode(text.encode()).decode()}]]"


@pytest.fixture
def gw(emu: EmulatorServer, start_gateway: GatewayFactory) -> GatewayServer:
    return start_gateway(emulator_yaml(emu))


def streamed(gw: GatewayServer, chunking: dict[str, Any] | None) -> list[str]:
    extra = {"chunking": chunking} if chunking is not None else {}
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0) as client:
        stream = client.chat.completions.create(
            model="fast",
            messages=[{"role": "user", "content": "Say it. " + scripted(ANSWER)}],
            stream=True,
            extra_body=extra,
        )
        return [c.choices[0].delta.content or "" for c in stream if c.choices]


def test_sse_sentences_are_whole_and_the_text_unchanged(gw: GatewayServer) -> None:
    raw = [piece for piece in streamed(gw, None) if piece]
    assert "".join(raw) == ANSWER
    assert len(raw) > 6  # the emulator streams it in small pieces
    pieces = [p for p in streamed(gw, {"mode": "sentence", "max_delay_ms": 2000}) if p]
    assert "".join(pieces) == ANSWER
    assert pieces[:2] == ["First sentence here.", " Second one, a bit longer?"]
    assert all(p.endswith(("!", "?", ".", "\n")) for p in pieces[:-1])
    assert pieces[-1] == "and the end"
    lines = [p for p in streamed(gw, {"mode": "line", "max_delay_ms": 2000}) if p]
    assert lines == ["First sentence here. Second one, a bit longer? Third!\n", "A new line\n",
                     "and the end"]  # fmt: skip


def test_the_websocket_regroups_alike(gw: GatewayServer) -> None:
    body = {
        "model": "fast",
        "messages": [{"role": "user", "content": "Say it. " + scripted(ANSWER)}],
        "stream": True,
        "chunking": {"mode": "line"},
    }
    with connect(f"ws://127.0.0.1:{gw.port}/v1/ws") as socket:
        socket.send(json.dumps({"type": "request", "id": "r1", "endpoint": "chat.completions",
                                "body": body}))  # fmt: skip
        pieces: list[str] = []
        while True:
            message = json.loads(socket.recv(timeout=30))
            if message["type"] == "done":
                break
            assert message["type"] == "chunk", message
            choices = message["data"]["choices"]
            if choices and choices[0]["delta"].get("content"):
                pieces.append(choices[0]["delta"]["content"])
    assert pieces == ["First sentence here. Second one, a bit longer? Third!\n", "A new line\n",
                      "and the end"]  # fmt: skip


def test_bad_chunking_options_are_a_400(gw: GatewayServer) -> None:
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0)
    with client, pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(
            model="fast",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            extra_body={"chunking": {"mode": "paragraph"}},
        )
    assert bad.value.body["param"].startswith("chunking")  # type: ignore[index]
