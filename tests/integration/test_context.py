"""Context building end to end: a real gateway, the provider emulator and the Memory, Project and
Learning service emulators, each on its own socket, called with the official `openai` SDK. The
upstream receives the learning, memory and project blocks in that order, after the request's own
system text and within their budgets; a slow or down service leaves its block out, the answer
still comes on time, and `x-gateway-context` says what failed; a finished exchange is given to
the Memory service when asked."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import bpe_openai
import httpx
import openai
import pytest

from conftest import GatewayFactory, emulator_yaml
from harness import EmulatorServer, GatewayServer
from services_support import ServiceEmulators

pytestmark = pytest.mark.integration

MASTER = "sk-master-context-7d1e"
QUESTION = "How do I cancel python asyncio tasks in the gateway circuit breaker?"
CONTEXT = {"memory": True, "learning": True, "project_id": "p-gateway"}


@pytest.fixture
def services() -> Iterator[ServiceEmulators]:
    emulators = ServiceEmulators()
    yield emulators
    emulators.stop()


def context_yaml(emu: EmulatorServer, services: ServiceEmulators, extra: str = "") -> str:
    urls = services.urls
    return emulator_yaml(
        emu,
        f"""
integrations:
  enabled: true
  budget_s: 0.4
  memory: {{url: "{urls["memory"]}", timeout_s: 2}}
  project: {{url: "{urls["project"]}", timeout_s: 2}}
  learning: {{url: "{urls["learning"]}", timeout_s: 2}}
  blocks: {{learning: 200, memory: 300, project: 150}}
{extra}""",
    )


def client(gw: GatewayServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=MASTER, max_retries=0)


def ask(gw: GatewayServer, **extra: Any) -> tuple[str, dict[str, str]]:
    with client(gw) as sdk:
        raw = sdk.chat.completions.with_raw_response.create(
            model="fast",
            messages=[
                {"role": "system", "content": "You are a patient tutor."},
                {"role": "user", "content": QUESTION},
            ],
            extra_body={"user": "u-bob", "context": CONTEXT, **extra},
        )
        answer = raw.parse().choices[0].message.content or ""
    return answer, dict(raw.headers)


def upstream_messages(emu: EmulatorServer) -> list[dict[str, Any]]:
    sent = [r for r in emu.requests() if r["path"].endswith("/chat/completions")]
    messages: list[dict[str, Any]] = sent[-1]["body"]["messages"]
    return messages


def test_the_upstream_gets_the_blocks_in_order_within_their_budgets(
    emu: EmulatorServer, services: ServiceEmulators, start_gateway: GatewayFactory
) -> None:
    gw = start_gateway(context_yaml(emu, services), master_key=MASTER)
    answer, headers = ask(gw)
    assert answer
    assert headers["x-gateway-context"] == "memory=ok, project=ok, learning=ok"
    messages = upstream_messages(emu)
    assert [m["role"] for m in messages] == ["system", "system", "system", "system", "user"]
    own, learning, memory, project, question = (m["content"] for m in messages)
    assert own == "You are a patient tutor."
    assert learning.startswith("About the learner (from the Learning service):")
    assert memory.startswith("What this user's earlier sessions left (from the Memory service)")
    assert "circuit breaker" in memory  # Bob's memory that matches the question
    assert project.startswith("Project ")
    assert "(from the Project service)" in project
    assert question == QUESTION
    o200k = bpe_openai.get_encoding("o200k_base")  # the encoding the budgets are counted in
    for text, budget in ((learning, 200), (memory, 300), (project, 150)):
        assert len(o200k.encode_ordinary(text)) <= budget
    # the gateway's own fields are not sent upstream
    sent = [r for r in emu.requests() if r["path"].endswith("/chat/completions")][-1]["body"]
    assert "context" not in sent


def test_a_slow_service_is_left_out_and_the_answer_comes_on_time(
    emu: EmulatorServer, services: ServiceEmulators, start_gateway: GatewayFactory
) -> None:
    gw = start_gateway(context_yaml(emu, services), master_key=MASTER)
    ask(gw)  # connections open
    services.faults("project", latency_s=3)
    started = time.monotonic()
    answer, headers = ask(gw)
    took = time.monotonic() - started
    assert answer
    assert headers["x-gateway-context"] == "memory=ok, project=timeout, learning=ok"
    assert took < 2.0, took  # the budget (0.4 s), not the project service's 3 s
    contents = [m["content"] for m in upstream_messages(emu)]
    assert not any(c.startswith("Project ") for c in contents)
    assert any(c.startswith("About the learner") for c in contents)


def test_a_service_that_is_down_is_reported_and_the_rest_used(
    emu: EmulatorServer, services: ServiceEmulators, start_gateway: GatewayFactory
) -> None:
    services.faults("learning", down=True)
    gw = start_gateway(context_yaml(emu, services), master_key=MASTER)
    answer, headers = ask(gw)
    assert answer
    assert headers["x-gateway-context"] == "memory=ok, project=ok, learning=unavailable"
    metrics = httpx.get(f"{gw.url}/metrics").text
    assert 'ai_gateway_context_sources_total{reason="unavailable",source="learning"} 1.0' in (
        metrics
    )


def test_a_streamed_exchange_is_given_to_the_memory_service_when_asked(
    emu: EmulatorServer, services: ServiceEmulators, start_gateway: GatewayFactory
) -> None:
    gw = start_gateway(context_yaml(emu, services), master_key=MASTER)
    with client(gw) as sdk:
        stream = sdk.chat.completions.create(
            model="fast",
            messages=[{"role": "user", "content": QUESTION}],
            stream=True,
            extra_body={"user": "u-bob", "context": {"memory": True, "store": True}},
        )
        answer = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    deadline = time.monotonic() + 5
    while True:
        stored = [r for r in services.requests("memory") if r["path"] == "/v1/exchanges"]
        if stored or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(stored) == 1
    body = stored[0]["body"]
    assert body["user_id"] == "u-bob"
    assert body["answer"] == answer
    assert body["messages"] == [{"role": "user", "content": QUESTION}]  # not the blocks


def test_context_needs_a_user_and_a_configured_gateway(
    emu: EmulatorServer, services: ServiceEmulators, start_gateway: GatewayFactory
) -> None:
    gw = start_gateway(context_yaml(emu, services), master_key=MASTER)
    with client(gw) as sdk, pytest.raises(openai.BadRequestError) as no_user:
        sdk.chat.completions.create(
            model="fast",
            messages=[{"role": "user", "content": QUESTION}],
            extra_body={"context": CONTEXT},
        )
    assert no_user.value.code == "context_needs_user"
    plain = start_gateway(emulator_yaml(emu), master_key=MASTER)
    with pytest.raises(openai.BadRequestError) as off:
        ask(plain)
    assert off.value.code == "context_unavailable"
    assert "integrations.enabled" in str(off.value)


def test_cached_answers_built_on_context_are_never_shared_between_users(
    emu: EmulatorServer, services: ServiceEmulators, start_gateway: GatewayFactory
) -> None:
    gw = start_gateway(
        context_yaml(emu, services, "cache: {enabled: true, scope: global}"), master_key=MASTER
    )
    assert ask(gw)[1]["x-gateway-cache"] == "miss"
    assert ask(gw)[1]["x-gateway-cache"] == "hit"
    assert ask(gw, user="u-alice")[1]["x-gateway-cache"] == "miss"
    assert ask(gw, context={"memory": True})[1]["x-gateway-cache"] == "miss"


def test_a_template_can_ask_for_context_and_the_request_s_own_wins(
    emu: EmulatorServer, services: ServiceEmulators, start_gateway: GatewayFactory
) -> None:
    gw = start_gateway(context_yaml(emu, services), master_key=MASTER)
    created = httpx.post(
        f"{gw.url}/v1/prompts",
        headers={"Authorization": f"Bearer {MASTER}"},
        json={
            "id": "tutor",
            "template": {
                "messages": [{"role": "system", "content": "You are a tutor."}],
                "context": {"learning": True},
            },
        },
    )
    assert created.status_code == 201, created.text
    body = {
        "model": "fast",
        "user": "u-bob",
        "messages": [{"role": "user", "content": QUESTION}],
        "prompt": {"id": "tutor"},
    }
    headers = {"Authorization": f"Bearer {MASTER}"}
    resp = httpx.post(f"{gw.url}/v1/chat/completions", json=body, headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-gateway-context"] == "learning=ok"
    sent = [r for r in emu.requests() if r["path"].endswith("/chat/completions")][-1]["body"]
    assert "context" not in sent
    assert [m["content"].split("\n")[0] for m in sent["messages"][:2]] == [
        "You are a tutor.",
        "About the learner (from the Learning service):",
    ]
    own = {**body, "context": {"memory": True}}
    resp = httpx.post(f"{gw.url}/v1/chat/completions", json=own, headers=headers)
    assert resp.headers["x-gateway-context"] == "memory=ok"
