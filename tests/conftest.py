from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import openai
import pytest
import redis

from harness import EMULATOR_KEY, EmulatorServer, GatewayServer, config_from_yaml

PROVIDER_ENV = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GEMINI_BASE_URL",
    "AI_GATEWAY_CONFIG",
    "AI_GATEWAY_MASTER_KEY",
    "AI_GATEWAY_PORT",
    "AI_GATEWAY_MAX_BODY_BYTES",
    "AI_GATEWAY_DEMO",
)


@pytest.fixture(autouse=True)
def _no_ambient_provider_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests configure providers and settings explicitly; a developer's real keys or
    AI_GATEWAY_* variables never leak in."""
    for name in PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)
    # Analytics go to a fresh SQLite file per test, never into the checkout.
    monkeypatch.setenv("AI_GATEWAY_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorServer]:
    server = EmulatorServer()
    yield server
    server.stop()


@pytest.fixture
def emu(emulator: EmulatorServer) -> Iterator[EmulatorServer]:
    """The shared emulator, with faults and the request log cleared around the test."""
    emulator.reset()
    yield emulator
    emulator.reset()


GatewayFactory = Callable[..., GatewayServer]


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[GatewayFactory]:
    started: list[GatewayServer] = []

    def factory(yaml_text: str, **overrides: object) -> GatewayServer:
        server = GatewayServer(config_from_yaml(tmp_path, yaml_text, dict(overrides)))
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


def emulator_yaml(emulator: EmulatorServer, extra: str = "") -> str:
    # retries: 0 so that error-mapping tests see each upstream failure as it is; the router's
    # retries and fallbacks are tested with their own configs (test_router.py).
    return f"""
router: {{retries: 0}}
providers:
  openai: {{api_key: {EMULATOR_KEY}, api_base: "{emulator.url}/v1"}}
models:
  - name: fast
    provider: openai
    model: gpt-4o-mini
    api_base: {emulator.url}/v1
    api_key: {EMULATOR_KEY}
  - name: embed
    provider: openai
    model: text-embedding-3-small
    api_base: {emulator.url}/v1
    api_key: {EMULATOR_KEY}
{extra}
"""


@pytest.fixture
def gateway(emu: EmulatorServer, start_gateway: GatewayFactory) -> GatewayServer:
    return start_gateway(emulator_yaml(emu))


@pytest.fixture
def client(gateway: GatewayServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0) as c:
        yield c


REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_prefix(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Gateways started by the test share Redis (REDIS_URL) under a fresh key prefix; its keys
    are deleted afterwards. Skips without Redis, except in CI."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("Redis is not reachable at REDIS_URL")
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    monkeypatch.setenv("AI_GATEWAY_REDIS_PREFIX", prefix)
    yield prefix
    for key in client.scan_iter(match=f"*{prefix}*"):
        client.delete(key)
    client.close()
