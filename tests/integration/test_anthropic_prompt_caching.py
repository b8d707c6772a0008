"""Provider prompt caching, end to end: the official `openai` SDK -> the gateway -> the project's
Anthropic emulator, which caches prefixes marked with `cache_control` as Anthropic does.

A long system prompt sent twice is marked by the gateway; the second answer reports its tokens
as cached (`prompt_tokens_details.cached_tokens`), and the gateway's cost falls by exactly the
difference between the model's cache-write and cache-read prices for those tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from openai.types import CompletionUsage

from ai_gateway.model_registry import ModelInfo, load_default_registry
from conftest import EMULATOR_KEY, GatewayFactory
from harness import EmulatorServer, GatewayServer

pytestmark = pytest.mark.integration

CLAUDE = "claude-sonnet-4-20250514"
WORDS = 1500  # the emulator caches prefixes of 1024 tokens or more (one token per word)
SYSTEM = " ".join(f"rule{i % 50}" for i in range(WORDS))  # 6-7 bytes a word: ~2400 estimated
PREFIX = 3 + WORDS  # the emulator's tokens of the system turn (3 of overhead)
MILLION = Decimal(1_000_000)


def config(emu: EmulatorServer, cache: str = "") -> str:
    return f"""
router: {{retries: 0}}
models:
  - {{name: claude, provider: anthropic, model: {CLAUDE}, api_base: "{emu.url}",
     api_key: {EMULATOR_KEY}}}
{cache}
"""


@pytest.fixture
def gw(emu: EmulatorServer, start_gateway: GatewayFactory) -> GatewayServer:
    return start_gateway(config(emu))  # prompt caching is on by default


@pytest.fixture
def sdk(gw: GatewayServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0) as client:
        yield client


def messages(question: str = "Which rule comes first?") -> list[Any]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]


def upstream_system(emu: EmulatorServer) -> list[dict[str, Any]]:
    calls = [r for r in emu.requests() if r["path"] == "/v1/messages"]
    return calls[-1]["body"]["system"]  # type: ignore[no-any-return]


def prices() -> ModelInfo:
    info = load_default_registry().get("anthropic", CLAUDE)
    assert info is not None
    return info


def price(value: Decimal | None) -> Decimal:
    assert value is not None, "the registry prices the model"
    return value


def usage_of(completion: Any) -> CompletionUsage:
    usage = completion.usage
    assert isinstance(usage, CompletionUsage)
    return usage


def cached_tokens(usage: CompletionUsage) -> int:
    details = usage.prompt_tokens_details
    assert details is not None
    return details.cached_tokens or 0


def cache_writes(usage: CompletionUsage) -> int:
    return int((usage.model_extra or {})["cache_creation_input_tokens"])


def expected_cost(usage: CompletionUsage) -> Decimal:
    """The cost of `usage` at the registry's prices for the model: uncached input, cache reads
    at the cached-input price, cache writes at the cache-write price, output."""
    info = prices()
    read, write = cached_tokens(usage), cache_writes(usage)
    plain = usage.prompt_tokens - read - write
    return (
        plain * price(info.input_price)
        + read * price(info.cached_input_price)
        + write * price(info.cache_write_price)
        + usage.completion_tokens * price(info.output_price)
    ) / MILLION


def saving() -> Decimal:
    """What reading the prefix saves over writing it."""
    info = prices()
    per_token = price(info.cache_write_price) - price(info.cached_input_price)
    return PREFIX * per_token / MILLION


def test_a_long_system_prompt_is_cached_and_the_second_call_costs_less(
    sdk: openai.OpenAI, emu: EmulatorServer
) -> None:
    first = sdk.chat.completions.with_raw_response.create(model="claude", messages=messages())
    assert upstream_system(emu) == [
        {"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}
    ]
    second = sdk.chat.completions.with_raw_response.create(model="claude", messages=messages())
    one, two = usage_of(first.parse()), usage_of(second.parse())
    assert one.prompt_tokens == two.prompt_tokens == PREFIX + 3 + 4
    assert (cached_tokens(one), cache_writes(one)) == (0, PREFIX)
    assert (cached_tokens(two), cache_writes(two)) == (PREFIX, 0)
    cost_one = Decimal(first.headers["x-gateway-cost-usd"])
    cost_two = Decimal(second.headers["x-gateway-cost-usd"])
    assert cost_one == expected_cost(one)
    assert cost_two == expected_cost(two)
    assert cost_one - cost_two == saving()  # 1503 tokens x (3.75 - 0.30) USD per 1M


def test_a_streamed_answer_reports_the_cached_tokens_and_is_charged_less(
    sdk: openai.OpenAI, gw: GatewayServer
) -> None:
    costs: list[Decimal] = []
    for cached in (0, PREFIX):
        raw = sdk.chat.completions.with_raw_response.create(
            model="claude",
            messages=messages(),
            stream=True,
            stream_options={"include_usage": True},
        )
        usage = usage_of(list(raw.parse())[-1])
        assert (cached_tokens(usage), cache_writes(usage)) == (cached, PREFIX - cached)
        [row] = httpx.get(
            f"{gw.url}/ai/analytics/requests",
            params={"start": "1h", "request_id": raw.headers["x-gateway-request-id"]},
        ).json()["data"]
        costs.append(Decimal(row["cost_usd"]))
        assert costs[-1] == expected_cost(usage)
    assert costs[0] - costs[1] == saving()


def test_nothing_is_marked_when_prompt_caching_is_off(
    emu: EmulatorServer, start_gateway: GatewayFactory
) -> None:
    gw = start_gateway(config(emu, "cache: {prompt_caching: {enabled: false}}"))
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0) as client:
        for _ in range(2):
            reply = client.chat.completions.create(model="claude", messages=messages())
            assert upstream_system(emu) == [{"type": "text", "text": SYSTEM}]
            assert cached_tokens(usage_of(reply)) == 0
    # The same requests through a gateway with the default are cached.
    gw = start_gateway(config(emu, "cache: {prompt_caching: {min_tokens: 1024}}"))
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0) as client:
        for cached in (0, PREFIX):
            reply = client.chat.completions.create(model="claude", messages=messages())
            assert cached_tokens(usage_of(reply)) == cached
