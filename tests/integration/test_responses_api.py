"""The Responses API end to end: a real gateway on a socket, the official `openai` SDK as the
client, and the provider emulator behind it as an OpenAI, an Anthropic and a Gemini deployment.
Plain, streamed (the SDK's stream helper and raw SSE checked against the SDK's own event
types), function tools with a function_call_output follow-up, text.format json_schema,
previous_response_id, and the stored responses' routes (retrieve, delete, input_items, cancel),
each caller seeing only its own. The WebSocket mode is in test_responses_ws.py."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import ResponseStreamEvent
from pydantic import BaseModel, TypeAdapter

from conftest import PROVIDER_ENV
from harness import EMULATOR_KEY, EmulatorServer, GatewayServer, config_from_yaml

pytestmark = pytest.mark.integration

MASTER = "sk-master-responses-7c1a"
ADMIN = {"Authorization": f"Bearer {MASTER}"}
MODELS = ("gpt", "claude", "gem")
EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def gateway_yaml(emu: EmulatorServer) -> str:
    return f"""
router: {{retries: 0}}
security: {{rate_limits: {{user: {{rps: 1000, burst: 1000}}}}}}
models:
  - {{name: gpt, provider: openai, model: gpt-4o-mini, api_base: "{emu.url}/v1",
      api_key: {EMULATOR_KEY}}}
  - {{name: claude, provider: anthropic, model: claude-sonnet-4-20250514,
      api_base: "{emu.url}", api_key: {EMULATOR_KEY}}}
  - {{name: gem, provider: gemini, model: gemini-2.0-flash, api_base: "{emu.url}",
      api_key: {EMULATOR_KEY}}}
"""


@pytest.fixture(scope="module")
def gw(
    emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    """One gateway for the module (with authentication, so that callers are told apart)."""
    with pytest.MonkeyPatch.context() as env:
        for name in PROVIDER_ENV:
            env.delenv(name, raising=False)
        env.setenv("AI_GATEWAY_DATA_DIR", str(tmp_path_factory.mktemp("data")))
        config = config_from_yaml(
            tmp_path_factory.mktemp("gw"), gateway_yaml(emulator), {"master_key": MASTER}
        )
        server = GatewayServer(config)
    yield server
    server.stop()


def key_for(gw: GatewayServer, user: str) -> str:
    resp = httpx.post(f"{gw.url}/admin/keys", json={"user": user}, headers=ADMIN, timeout=10)
    assert resp.status_code == 201, resp.text
    key: str = resp.json()["key"]
    return key


@pytest.fixture(scope="module")
def keys(gw: GatewayServer) -> dict[str, str]:
    return {"alice": key_for(gw, "alice"), "bob": key_for(gw, "bob")}


def sdk(gw: GatewayServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0, timeout=30)


@pytest.fixture
def alice(gw: GatewayServer, keys: dict[str, str], emu: EmulatorServer) -> Iterator[openai.OpenAI]:
    with sdk(gw, keys["alice"]) as client:
        yield client


@pytest.fixture
def bob(gw: GatewayServer, keys: dict[str, str]) -> Iterator[openai.OpenAI]:
    with sdk(gw, keys["bob"]) as client:
        yield client


def upstream_bodies(emu: EmulatorServer) -> list[dict[str, Any]]:
    return [r["body"] for r in emu.requests() if r["method"] == "POST"]


def raw_events(gw: GatewayServer, key: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The SSE events of a streamed create, as JSON, each with its `event:` name checked."""
    events: list[dict[str, Any]] = []
    name = None
    with httpx.stream(
        "POST",
        f"{gw.url}/v1/responses",
        json={**body, "stream": True},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    ) as resp:
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                event = json.loads(line[6:])
                assert event["type"] == name
                events.append(event)
    return events


@pytest.mark.parametrize("model", MODELS)
def test_create_plain(alice: openai.OpenAI, emu: EmulatorServer, model: str) -> None:
    response = alice.responses.create(
        model=model, input="Tell me about tide pools", instructions="Answer in one line."
    )
    assert response.object == "response"
    assert response.status == "completed"
    assert response.id.startswith("resp_")
    assert response.model == model
    assert response.output_text.startswith("Emulated reply to: Tell me about tide pools")
    [message] = response.output
    assert message.type == "message"
    assert message.role == "assistant"
    assert response.usage is not None
    assert response.usage.input_tokens > 0
    assert response.usage.output_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    assert response.instructions == "Answer in one line."
    assert "Answer in one line." in json.dumps(upstream_bodies(emu)[-1])
    again = alice.responses.retrieve(response.id)
    assert again.output_text == response.output_text
    assert again.usage == response.usage


@pytest.mark.parametrize("model", MODELS)
def test_streamed_with_the_sdk_helper(alice: openai.OpenAI, model: str) -> None:
    deltas: list[str] = []
    with alice.responses.stream(model=model, input="Stream a short story") as stream:
        kinds = []
        for event in stream:
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert "response.output_text.done" in kinds
    assert "response.content_part.done" in kinds
    assert len(deltas) > 1
    assert final.output_text == "".join(deltas)
    assert final.output_text.startswith("Emulated reply to: Stream a short story")
    assert final.usage is not None
    assert final.usage.output_tokens > 0
    assert alice.responses.retrieve(final.id).output_text == final.output_text


@pytest.mark.parametrize("model", MODELS)
def test_streamed_events_validate_against_the_sdk_types(
    gw: GatewayServer, keys: dict[str, str], model: str
) -> None:
    body = {"model": model, "input": "What is the weather in Oslo?", "tools": [WEATHER]}
    events = raw_events(gw, keys["alice"], body)
    for event in events:
        EVENTS.validate_python(event, strict=False)  # raises on a missing or wrong field
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    assert "response.function_call_arguments.delta" in kinds
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert json.loads(done["arguments"]).keys() == {"city"}
    [call] = events[-1]["response"]["output"]
    assert call["type"] == "function_call"
    assert call["name"] == "get_weather"
    assert call["arguments"] == done["arguments"]


@pytest.mark.parametrize("model", MODELS)
def test_function_call_and_its_output(
    alice: openai.OpenAI, emu: EmulatorServer, model: str
) -> None:
    first = alice.responses.create(model=model, input="Weather in Paris?", tools=[WEATHER])
    [call] = first.output
    assert call.type == "function_call"
    assert call.name == "get_weather"
    assert isinstance(json.loads(call.arguments)["city"], str)
    second = alice.responses.create(
        model=model,
        previous_response_id=first.id,
        tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}],
    )
    assert second.status == "completed"
    assert "sunny, 21 C" in second.output_text  # the emulator quotes a tool's result
    sent = json.dumps(upstream_bodies(emu)[-1])
    assert "Weather in Paris?" in sent
    assert "sunny, 21 C" in sent


class Forecast(BaseModel):
    city: str
    high_c: int
    dry: bool


@pytest.mark.parametrize("model", MODELS)
def test_text_format_json_schema(alice: openai.OpenAI, model: str) -> None:
    parsed = alice.responses.parse(model=model, input="Forecast for Lima", text_format=Forecast)
    assert isinstance(parsed.output_parsed, Forecast)
    raw = alice.responses.create(
        model=model,
        input="Give me JSON about Lima",
        text={"format": {"type": "json_object"}},
    )
    assert isinstance(json.loads(raw.output_text), dict)


@pytest.mark.parametrize("model", MODELS)
def test_previous_response_id_carries_the_conversation(
    alice: openai.OpenAI, emu: EmulatorServer, model: str
) -> None:
    first = alice.responses.create(model=model, input="My cat is called Miso", store=True)
    second = alice.responses.create(
        model=model, previous_response_id=first.id, input="What is my cat called?"
    )
    assert second.previous_response_id == first.id
    sent = json.dumps(upstream_bodies(emu)[-1])
    assert "My cat is called Miso" in sent
    assert first.output_text[:40] in sent  # the earlier answer went back up too
    assert "What is my cat called?" in sent
    items = alice.responses.input_items.list(second.id, order="asc")
    texts = [item.type for item in items.data]
    assert texts == ["message", "message", "message"]
    assert [getattr(i, "role", None) for i in items.data] == ["user", "assistant", "user"]
    newest_first = alice.responses.input_items.list(second.id)
    assert newest_first.data[0].id == items.data[-1].id


def test_another_users_response_is_404(alice: openai.OpenAI, bob: openai.OpenAI) -> None:
    mine = alice.responses.create(model="gpt", input="private thoughts")
    for call in (
        lambda: bob.responses.retrieve(mine.id),
        lambda: bob.responses.delete(mine.id),
        lambda: bob.responses.input_items.list(mine.id),
        lambda: bob.responses.cancel(mine.id),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    with pytest.raises(openai.BadRequestError) as refused:
        bob.responses.create(model="gpt", previous_response_id=mine.id, input="and then?")
    assert refused.value.code == "previous_response_not_found"
    assert alice.responses.retrieve(mine.id).id == mine.id  # still there, still Alice's


def test_store_false_is_not_kept(alice: openai.OpenAI) -> None:
    response = alice.responses.create(model="gpt", input="forget me", store=False)
    assert response.store is False
    with pytest.raises(openai.NotFoundError):
        alice.responses.retrieve(response.id)
    with pytest.raises(openai.BadRequestError):
        alice.responses.create(model="gpt", previous_response_id=response.id, input="and?")


def test_delete_and_cancel(alice: openai.OpenAI) -> None:
    response = alice.responses.create(model="gpt", input="short lived")
    with pytest.raises(openai.BadRequestError) as refused:
        alice.responses.cancel(response.id)
    assert refused.value.code == "response_not_cancellable"
    alice.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        alice.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        alice.responses.delete(response.id)


def test_refusals_name_the_field(alice: openai.OpenAI) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"background": True}, "background"),
        ({"conversation": "conv_123"}, "conversation"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
        ({"temperature": 3}, "temperature"),
    ]
    for extra, param in cases:
        body = {"input": "hi", **extra}
        with pytest.raises(openai.BadRequestError) as refused:
            alice.responses.create(model="gpt", **body)
        assert refused.value.param == param, extra
    with pytest.raises(openai.BadRequestError) as missing:
        alice.responses.create(input="no model")  # type: ignore[call-overload]
    assert missing.value.param == "model"


def test_max_output_tokens_makes_it_incomplete(alice: openai.OpenAI) -> None:
    response = alice.responses.create(
        model="claude", input="Write a long essay [[words:200]]", max_output_tokens=16
    )
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"


def test_upstream_failure_mid_stream_is_response_failed(
    gw: GatewayServer, keys: dict[str, str], emu: EmulatorServer
) -> None:
    emu.add_faults({"kind": "drop_mid_stream", "after_chunks": 3, "provider": "openai"})
    events = raw_events(gw, keys["alice"], {"model": "gpt", "input": "this will break"})
    for event in events:
        EVENTS.validate_python(event)
    assert events[0]["type"] == "response.created"
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    failed = events[-1]["response"]
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "server_error"


def test_the_chat_chain_applies(gw: GatewayServer) -> None:
    """A key's allowed models, the usage record and the route headers, as for chat."""
    resp = httpx.post(
        f"{gw.url}/admin/keys", json={"user": "carol", "models": ["gpt"]}, headers=ADMIN, timeout=10
    )
    assert resp.status_code == 201, resp.text
    with sdk(gw, resp.json()["key"]) as carol:
        with pytest.raises(openai.PermissionDeniedError) as refused:
            carol.responses.create(model="claude", input="not for me")
        assert refused.value.code == "model_not_allowed"
        raw = carol.responses.with_raw_response.create(model="gpt", input="count me")
    assert raw.headers["x-gateway-provider"] == "openai"
    request_id = raw.headers["x-gateway-request-id"]
    deadline = time.monotonic() + 10
    rows: list[Any] = []
    while not rows and time.monotonic() < deadline:
        rows = httpx.get(
            f"{gw.url}/ai/analytics/requests",
            params={"start": "1h", "request_id": request_id},
            headers=ADMIN,
            timeout=10,
        ).json()["data"]
        time.sleep(0.1)
    [row] = rows
    assert row["model"] == "gpt"
    assert row["completion_tokens"] == raw.parse().usage.output_tokens  # type: ignore[union-attr]


def test_a_prompt_template_of_the_gateway(
    gw: GatewayServer, alice: openai.OpenAI, emu: EmulatorServer
) -> None:
    template = {
        "id": "haiku-responses",
        "template": {
            "model": "claude",
            "messages": [{"role": "system", "content": "Write haiku about {{ topic }}."}],
        },
        "variables": {"type": "object", "properties": {"topic": {"type": "string"}}},
        "labels": ["production"],
    }
    made = httpx.post(f"{gw.url}/v1/prompts", json=template, headers=ADMIN, timeout=10)
    assert made.status_code == 201, made.text
    for version in ("1", "production"):
        raw = alice.responses.with_raw_response.create(
            prompt={"id": "haiku-responses", "version": version, "variables": {"topic": "rain"}},
            input="Now one more",
        )
        response = raw.parse()
        assert raw.headers["x-gateway-prompt"] == "haiku-responses@1"
        assert raw.headers["x-gateway-provider"] == "anthropic"  # the template's model
        assert response.model == "claude"
        sent = json.dumps(upstream_bodies(emu)[-1])
        assert "Write haiku about rain." in sent
        assert "Now one more" in sent
    with pytest.raises(openai.NotFoundError):
        alice.responses.create(prompt={"id": "no-such-template"}, input="x")
