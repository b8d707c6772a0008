"""The semantic cache through the gateway, with the built-in local embedding model and embedded
Qdrant: a paraphrase above the threshold is a `semantic-hit` with the original answer; an
unrelated question is a miss; another tenant's paraphrase is a miss; other parameters are a miss;
requests with tools are never looked up semantically."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from ai_gateway.providers.local import local_models_installed
from conftest import GatewayFactory, emulator_yaml
from harness import EmulatorServer, GatewayServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not local_models_installed(), reason="the local model is not installed"),
]

MASTER = "sk-master-semantic-07be"
ADMIN = {"Authorization": f"Bearer {MASTER}"}
CONFIG = """
security: {rate_limits: {user: {rps: 100000, burst: 100000}}}
cache:
  models: {fast: {enabled: true, semantic: true}}
"""
ORIGINAL = "How do I reverse a list in Python?"
PARAPHRASE = "how can I reverse a list in python"  # cosine 0.997 with the local model
UNRELATED = "What is the capital of France?"


@pytest.fixture
def gw(emu: EmulatorServer, start_gateway: GatewayFactory) -> GatewayServer:
    return start_gateway(emulator_yaml(emu, CONFIG), master_key=MASTER)


def sdk(gw: GatewayServer, key: str = MASTER) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0, timeout=60)


def ask(client: openai.OpenAI, text: str, **extra: Any) -> Any:
    return client.chat.completions.with_raw_response.create(
        model="fast", messages=[{"role": "user", "content": text}], **extra
    )


@pytest.fixture
def client(gw: GatewayServer) -> Iterator[openai.OpenAI]:
    with sdk(gw) as c:
        yield c


def test_a_paraphrase_is_a_semantic_hit_with_the_original_answer(
    client: openai.OpenAI, emu: EmulatorServer
) -> None:
    first = ask(client, ORIGINAL)
    assert first.headers["x-gateway-cache"] == "miss"
    again = ask(client, PARAPHRASE)
    assert again.headers["x-gateway-cache"] == "semantic-hit"
    assert float(again.headers["x-gateway-cache-similarity"]) >= 0.95
    assert again.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert ask(client, UNRELATED).headers["x-gateway-cache"] == "miss"
    assert emu.stats()["providers"]["openai"]["gpt-4o-mini"]["requests"] == 2


def test_another_tenant_s_paraphrase_is_a_miss(gw: GatewayServer, client: openai.OpenAI) -> None:
    ask(client, ORIGINAL)
    for user, team, text in (("mallory", "red", PARAPHRASE), ("trudy", "green", ORIGINAL)):
        created = httpx.post(
            f"{gw.url}/admin/keys", json={"user": user, "team": team}, headers=ADMIN
        ).json()
        with sdk(gw, created["key"]) as other:
            assert ask(other, text).headers["x-gateway-cache"] == "miss", user


def test_other_parameters_or_tools_are_never_a_semantic_hit(client: openai.OpenAI) -> None:
    ask(client, ORIGINAL)
    assert ask(client, PARAPHRASE, temperature=0.9).headers["x-gateway-cache"] == "miss"
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    ask(client, ORIGINAL, tools=[tool])
    assert ask(client, PARAPHRASE, tools=[tool]).headers["x-gateway-cache"] == "miss"
