"""The Responses API's WebSocket mode on a real gateway, driven by the official SDK's
`client.responses.connect()` (and raw `websockets` for what the SDK hides): response.create
events answered with the same events as the HTTP stream (checked against the SDK's server event
types), previous_response_id across turns (a `store: false` turn continued on the same socket),
lanes (`stream_id`), a warm-up (`generate: false`), errors as `error` events, and a socket
without a credential refused at the upgrade."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import websockets
from openai.types.responses import ResponsesServerEvent
from pydantic import TypeAdapter
from websockets.exceptions import InvalidStatus

from conftest import GatewayFactory
from harness import EMULATOR_KEY, EmulatorServer, GatewayServer

pytestmark = pytest.mark.integration

MASTER = "sk-master-responses-ws-2b9e"
SERVER_EVENTS: TypeAdapter[Any] = TypeAdapter(ResponsesServerEvent)
DONE = ("response.completed", "response.incomplete", "response.failed", "error")


@pytest.fixture
def gw(emu: EmulatorServer, start_gateway: GatewayFactory) -> GatewayServer:
    yaml_text = f"""
router: {{retries: 0}}
models:
  - {{name: gpt, provider: openai, model: gpt-4o-mini, api_base: "{emu.url}/v1",
      api_key: {EMULATOR_KEY}}}
  - {{name: claude, provider: anthropic, model: claude-sonnet-4-20250514,
      api_base: "{emu.url}", api_key: {EMULATOR_KEY}}}
  - {{name: gem, provider: gemini, model: gemini-2.0-flash, api_base: "{emu.url}",
      api_key: {EMULATOR_KEY}}}
"""
    return start_gateway(yaml_text, master_key=MASTER)


@pytest.fixture
def client(gw: GatewayServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=MASTER, max_retries=0) as c:
        yield c


def until_done(connection: Any) -> list[Any]:
    events = []
    for event in connection:
        events.append(event)
        if event.type in DONE:
            return events
    raise AssertionError("the socket closed before the response finished")


@pytest.mark.parametrize("model", ["gpt", "claude", "gem"])
def test_the_sdk_connects_and_creates_responses(
    client: openai.OpenAI, emu: EmulatorServer, model: str
) -> None:
    with client.responses.connect() as connection:
        connection.response.create(model=model, input="Hello over a socket", store=False)
        first = until_done(connection)
        kinds = [e.type for e in first]
        assert kinds[:2] == ["response.created", "response.in_progress"]
        assert kinds[-1] == "response.completed"
        text = "".join(e.delta for e in first if e.type == "response.output_text.delta")
        assert text.startswith("Emulated reply to: Hello over a socket")
        done = first[-1].response
        assert done.output_text == text
        assert [e.sequence_number for e in first] == list(range(len(first)))
        # store: false, continued on the same socket from its memory of the response.
        connection.response.create(
            model=model, previous_response_id=done.id, input="And a second turn"
        )
        second = until_done(connection)
        assert second[-1].type == "response.completed"
        sent = json.dumps(emu.requests()[-1]["body"])
        assert "Hello over a socket" in sent
        assert "And a second turn" in sent
    # Not stored: over HTTP it is not there.
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(done.id)


def test_errors_are_error_events_and_the_socket_stays_open(client: openai.OpenAI) -> None:
    with client.responses.connect() as connection:
        connection.response.create(model="no-such-model", input="hi")
        [error] = until_done(connection)
        assert error.type == "error"
        assert error.status == 404
        assert error.error.code == "model_not_found"
        connection.response.create(model="gpt", input="hi", previous_response_id="resp_nope")
        [missing] = until_done(connection)
        assert missing.status == 400
        assert missing.error.code == "previous_response_not_found"
        connection.response.create(model="gpt", input="still here?")
        assert until_done(connection)[-1].type == "response.completed"


def raw_socket(gw: GatewayServer, events: list[dict[str, Any]], finishes: int) -> list[Any]:
    async def run() -> list[Any]:
        url = gw.url.replace("http://", "ws://") + "/v1/responses"
        got: list[Any] = []
        headers = {"Authorization": f"Bearer {MASTER}"}
        async with websockets.connect(url, additional_headers=headers) as ws:
            for event in events:
                await ws.send(json.dumps(event))
            ended = 0
            while ended < finishes:
                message = json.loads(await asyncio.wait_for(ws.recv(), 20))
                got.append(message)
                ended += message["type"] in DONE
        return got

    return asyncio.run(run())


def test_lanes_warm_up_and_event_types(gw: GatewayServer, client: openai.OpenAI) -> None:
    warm = {"type": "response.create", "model": "gpt", "input": "Context: the cat is Miso"}
    got = raw_socket(gw, [{**warm, "generate": False}], 1)
    assert [m["type"] for m in got] == ["response.created", "response.completed"]
    warmed = got[-1]["response"]
    assert warmed["output"] == []
    # Stored (store defaults to true): a later socket continues from it.
    lanes = [
        {
            "type": "response.create",
            "model": "gpt",
            "input": f"lane {n} speaking",
            "stream_id": f"s{n}",
        }
        for n in (1, 2)
    ]
    lanes[0]["previous_response_id"] = warmed["id"]
    got = raw_socket(gw, lanes, 2)
    for message in got:
        SERVER_EVENTS.validate_python(message)  # the SDK's own server event types
        assert message["stream_id"] in ("s1", "s2")
    for lane in ("s1", "s2"):
        mine = [m for m in got if m["stream_id"] == lane]
        assert mine[-1]["type"] == "response.completed"
        assert [m["sequence_number"] for m in mine] == list(range(len(mine)))
    first_lane = next(
        m for m in got if m["stream_id"] == "s1" and m["type"] == "response.completed"
    )
    items = client.responses.input_items.list(first_lane["response"]["id"], order="asc")
    assert [getattr(i, "role", None) for i in items.data] == ["user", "user"]


def test_unsupported_events_are_refused(gw: GatewayServer) -> None:
    steer = {"type": "response.steer", "previous_response_id": "resp_x", "input": []}
    background = {"type": "response.create", "model": "gpt", "input": "x", "background": True}
    got = raw_socket(gw, [steer, background], 2)
    assert [m["error"]["code"] for m in got] == ["unsupported_event", "unsupported_parameter"]
    assert got[1]["error"]["param"] == "background"
    for message in got:
        SERVER_EVENTS.validate_python(message)


def test_a_socket_without_a_credential_is_refused_at_the_upgrade(gw: GatewayServer) -> None:
    async def run() -> None:
        url = gw.url.replace("http://", "ws://") + "/v1/responses"
        async with websockets.connect(url):
            pass

    with pytest.raises(InvalidStatus) as refused:
        asyncio.run(run())
    assert refused.value.response.status_code == 401


def test_a_stream_cut_upstream_ends_with_response_failed(
    gw: GatewayServer, emu: EmulatorServer
) -> None:
    emu.add_faults({"kind": "drop_mid_stream", "after_chunks": 3, "provider": "openai"})
    create = {"type": "response.create", "model": "gpt", "input": "this will break"}
    got = raw_socket(gw, [create], 2)  # an error event, then response.failed
    for message in got:
        SERVER_EVENTS.validate_python(message)
    assert got[0]["type"] == "response.created"
    assert [m["type"] for m in got[-2:]] == ["error", "response.failed"]
    assert got[-2]["error"]["code"] == "server_error"
    assert got[-1]["response"]["status"] == "failed"


def test_turned_off_it_is_refused(emu: EmulatorServer, start_gateway: GatewayFactory) -> None:
    off = start_gateway(f"""
websocket: {{enabled: false}}
models:
  - {{name: gpt, provider: openai, model: gpt-4o-mini, api_base: "{emu.url}/v1",
      api_key: {EMULATOR_KEY}}}
""")

    async def run() -> None:
        async with websockets.connect(off.url.replace("http://", "ws://") + "/v1/responses"):
            pass

    with pytest.raises(InvalidStatus) as refused:
        asyncio.run(run())
    assert refused.value.response.status_code == 403
    assert b"websocket_disabled" in refused.value.response.body
