"""The response cache through the gateway, with the official `openai` SDK as the client: a
repeated request is a hit with the same content and costs nothing; what changes the answer
(tools, temperature, the model) is a miss; another team never sees an entry; a streamed hit
replays the chunks; identical requests in flight share one upstream call; the client's controls
and `DELETE /admin/cache` work; the usage record says what the cache did and saved."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
import redis

from ai_gateway.emulator.app import EmulatorSettings
from conftest import REDIS_URL, GatewayFactory, emulator_yaml
from harness import EmulatorServer, GatewayServer

pytestmark = pytest.mark.integration

MASTER = "sk-master-cache-81ad"
ADMIN = {"Authorization": f"Bearer {MASTER}"}
CACHE = """
security: {rate_limits: {user: {rps: 100000, burst: 100000}}}
cache: {enabled: true}
"""
QUESTION = [{"role": "user", "content": "What does a gateway cache keep?"}]
TOOL = {
    "type": "function",
    "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
}


@pytest.fixture
def gw(emu: EmulatorServer, start_gateway: GatewayFactory) -> GatewayServer:
    return start_gateway(emulator_yaml(emu, CACHE), master_key=MASTER)


def key_for(gw: GatewayServer, user: str, team: str | None = None) -> str:
    body: dict[str, Any] = {"user": user}
    if team:
        body["team"] = team
    created = httpx.post(f"{gw.url}/admin/keys", json=body, headers=ADMIN)
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


@pytest.fixture
def client(gw: GatewayServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{gw.url}/v1", api_key=key_for(gw, "ulla", "blue"), max_retries=0
    ) as sdk:
        yield sdk


def upstream_calls(emu: EmulatorServer) -> int:
    stats = emu.stats()["providers"].get("openai", {}).get("gpt-4o-mini", {})
    return int(stats.get("requests", 0))


def ask(client: openai.OpenAI, **extra: Any) -> Any:
    return client.chat.completions.with_raw_response.create(
        model="fast", messages=QUESTION, **extra
    )


def test_a_repeated_request_is_a_hit_with_the_same_content_at_no_cost(
    client: openai.OpenAI, emu: EmulatorServer
) -> None:
    first = ask(client)
    second = ask(client)
    assert first.headers["x-gateway-cache"] == "miss"
    assert second.headers["x-gateway-cache"] == "hit"
    assert second.headers["x-gateway-cache-key"] == first.headers["x-gateway-cache-key"]
    assert int(second.headers["age"]) >= 0
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert upstream_calls(emu) == 1
    assert Decimal(first.headers["x-gateway-cost-usd"]) > 0
    assert "x-gateway-cost-usd" not in second.headers  # nothing was spent


@pytest.mark.parametrize(
    "change",
    [
        {"tools": [TOOL]},
        {"temperature": 0.3},
        {"tool_choice": "none", "tools": [TOOL]},
        {"seed": 7},
    ],
)
def test_what_changes_the_answer_is_a_miss(
    client: openai.OpenAI, emu: EmulatorServer, change: dict[str, Any]
) -> None:
    ask(client)
    changed = ask(client, **change)
    assert changed.headers["x-gateway-cache"] == "miss"
    assert upstream_calls(emu) == 2
    # `user` and `metadata` do not change the answer: still a hit.
    assert ask(client, user="someone-else").headers["x-gateway-cache"] == "hit"


def test_another_model_name_is_a_miss(emu: EmulatorServer, start_gateway: GatewayFactory) -> None:
    extra = f"""
  - name: fast-too
    provider: openai
    model: gpt-4o-mini
    api_base: {emu.url}/v1
    api_key: sk-emulator
{CACHE}"""
    gw = start_gateway(emulator_yaml(emu, extra), master_key=MASTER)
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=MASTER, max_retries=0) as sdk:
        ask(sdk)
        other = sdk.chat.completions.with_raw_response.create(model="fast-too", messages=QUESTION)
    assert other.headers["x-gateway-cache"] == "miss"


def test_another_team_never_sees_an_entry(gw: GatewayServer, client: openai.OpenAI) -> None:
    ask(client)
    teammate = key_for(gw, "olaf", "blue")
    stranger = key_for(gw, "mallory", "red")
    loner = key_for(gw, "nils")
    results = {}
    for name, key in (("teammate", teammate), ("stranger", stranger), ("loner", loner)):
        with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0) as sdk:
            results[name] = ask(sdk).headers["x-gateway-cache"]
    assert results == {"teammate": "hit", "stranger": "miss", "loner": "miss"}


def test_a_streamed_hit_replays_the_chunks(client: openai.OpenAI, emu: EmulatorServer) -> None:
    def streamed() -> tuple[str, list[str], Any]:
        raw = client.chat.completions.with_raw_response.create(
            model="fast",
            messages=QUESTION,
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces: list[str] = []
        usage = None
        for chunk in raw.parse():
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
            if chunk.usage is not None:
                usage = chunk.usage
        return raw.headers["x-gateway-cache"], pieces, usage

    status, pieces, usage = streamed()
    again, replayed, usage_again = streamed()
    assert (status, again) == ("miss", "hit")
    assert replayed == pieces
    assert len(replayed) > 3
    assert usage_again == usage
    # A JSON request is served from the streamed entry, and a stream from a JSON entry.
    assert ask(client).parse().choices[0].message.content == "".join(pieces)
    assert upstream_calls(emu) == 1


def test_a_stream_request_is_served_from_a_json_entry_in_several_chunks(
    client: openai.OpenAI, emu: EmulatorServer
) -> None:
    answer = ask(client, max_tokens=200).parse().choices[0].message.content
    stream = client.chat.completions.create(
        model="fast", messages=QUESTION, stream=True, max_tokens=200
    )
    pieces = [
        c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content
    ]
    assert "".join(pieces) == answer
    assert upstream_calls(emu) == 1


def test_identical_requests_in_flight_reach_the_upstream_once(
    start_gateway: GatewayFactory,
) -> None:
    slow = EmulatorServer(EmulatorSettings(chunk_delay_s=0.002))
    try:
        gw = start_gateway(emulator_yaml(slow, CACHE), master_key=MASTER)

        async def many(stream: bool) -> list[tuple[str, str]]:
            """100 identical requests at once: (answer, what the cache said) of each."""
            async with openai.AsyncOpenAI(
                base_url=f"{gw.url}/v1", api_key=MASTER, max_retries=0
            ) as sdk:
                messages: Any = [{"role": "user", "content": f"coalesce me {stream} [[words:50]]"}]

                async def one() -> tuple[str, str]:
                    raw = await sdk.chat.completions.with_raw_response.create(
                        model="fast", messages=messages, stream=stream
                    )
                    said = raw.headers.get("x-gateway-cache", "") + (
                        "+coalesced" if raw.headers.get("x-gateway-cache-coalesced") else ""
                    )
                    parsed: Any = raw.parse()
                    if not stream:
                        return parsed.choices[0].message.content or "", said
                    text = ""
                    async for chunk in parsed:
                        if chunk.choices and chunk.choices[0].delta.content:
                            text += chunk.choices[0].delta.content
                    return text, said

                return await asyncio.gather(*(one() for _ in range(100)))

        for stream, calls in ((False, 1), (True, 2)):
            replies = asyncio.run(many(stream))
            said = Counter(status for _, status in replies)
            assert len({answer for answer, _ in replies}) == 1, said
            assert replies[0][0]
            assert upstream_calls(slow) == calls, said  # one miss, the rest shared or hits
            assert said["miss"] == 1, said
    finally:
        slow.stop()


def test_the_client_s_controls(gw: GatewayServer, emu: EmulatorServer) -> None:
    def post(headers: dict[str, str] | None = None, **body: Any) -> httpx.Response:
        payload = {"model": "fast", "messages": QUESTION, **body}
        return httpx.post(
            f"{gw.url}/v1/chat/completions",
            json=payload,
            headers={**ADMIN, **(headers or {})},
            timeout=10,
        )

    assert post({"Cache-Control": "no-store"}).headers["x-gateway-cache"] == "miss"
    assert post().headers["x-gateway-cache"] == "miss"  # the no-store answer was not kept
    assert post().headers["x-gateway-cache"] == "hit"
    assert post({"Cache-Control": "no-cache"}).headers["x-gateway-cache"] == "refresh"
    time.sleep(1.1)
    assert post({"Cache-Control": "max-age=1"}).headers["x-gateway-cache"] == "miss"
    assert post(cache={"no_cache": True, "no_store": True}).headers["x-gateway-cache"] == "bypass"
    mine = post(cache={"namespace": "project-x"})
    assert mine.headers["x-gateway-cache"] == "miss"  # a namespace of its own
    assert post(cache={"namespace": "project-x"}).headers["x-gateway-cache"] == "hit"
    # The gateway's `cache` field never reaches the provider.
    assert all("cache" not in r["body"] for r in emu.requests())
    deleted = httpx.delete(
        f"{gw.url}/admin/cache", params={"namespace": "project-x"}, headers=ADMIN
    )
    assert deleted.status_code == 200
    assert deleted.json()["deleted"] == 1
    assert post(cache={"namespace": "project-x"}).headers["x-gateway-cache"] == "miss"
    one = post().headers["x-gateway-cache-key"]
    gone = httpx.delete(f"{gw.url}/admin/cache", params={"key": one}, headers=ADMIN)
    assert gone.json()["deleted"] == 1
    everything = httpx.delete(f"{gw.url}/admin/cache", headers=ADMIN)
    assert everything.status_code == 200
    refused = httpx.delete(f"{gw.url}/admin/cache", params={"key": "nope"}, headers=ADMIN)
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "key"


def test_a_bad_cache_field_is_a_400_naming_it(gw: GatewayServer) -> None:
    resp = httpx.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": "fast", "messages": QUESTION, "cache": {"ttl": -1}},
        headers=ADMIN,
    )
    assert resp.status_code == 400
    assert "cache" in resp.json()["error"]["param"]


def test_an_error_is_never_stored(gw: GatewayServer, emu: EmulatorServer) -> None:
    emu.add_faults({"kind": "status", "status": 500, "model": "gpt-4o-mini", "count": 1})
    sdk = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=MASTER, max_retries=0)
    with pytest.raises(openai.APIStatusError):
        ask(sdk)
    assert ask(sdk).headers["x-gateway-cache"] == "miss"
    emu.add_faults({"kind": "drop_mid_stream", "after_chunks": 2, "model": "gpt-4o-mini"})
    with pytest.raises(openai.APIError):
        for _ in sdk.chat.completions.create(
            model="fast", messages=[{"role": "user", "content": "cut [[words:30]]"}], stream=True
        ):
            pass
    again = sdk.chat.completions.with_raw_response.create(
        model="fast", messages=[{"role": "user", "content": "cut [[words:30]]"}]
    )
    assert again.headers["x-gateway-cache"] == "miss"  # the cut stream was not stored


def test_a_hit_passes_through_the_caller_s_current_output_rules(
    emu: EmulatorServer, start_gateway: GatewayFactory
) -> None:
    rules = """
security:
  rate_limits: {user: {rps: 100000, burst: 100000}}
  guardrails:
    policies:
      - name: answers
        rules: [{name: out-emails, detector: email, action: redact, on: output}]
cache: {enabled: true}
"""
    config = emulator_yaml(emu, rules)
    gw = start_gateway(config, master_key=MASTER)
    plain = key_for(gw, "ulla", "blue")
    guarded = httpx.post(
        f"{gw.url}/admin/keys",
        json={"user": "olaf", "team": "blue", "guardrails": ["answers"]},
        headers=ADMIN,
    ).json()["key"]
    question = [{"role": "user", "content": "write to jane.doe@example.com please"}]
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=plain, max_retries=0) as sdk:
        first = sdk.chat.completions.with_raw_response.create(model="fast", messages=question)
    assert "jane.doe@example.com" in (first.parse().choices[0].message.content or "")
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=guarded, max_retries=0) as sdk:
        hit = sdk.chat.completions.with_raw_response.create(model="fast", messages=question)
    assert hit.headers["x-gateway-cache"] == "hit"
    content = hit.parse().choices[0].message.content or ""
    assert "jane.doe@example.com" not in content
    assert "[REDACTED:email]" in content


def test_per_model_and_per_key_rules(emu: EmulatorServer, start_gateway: GatewayFactory) -> None:
    extra = f"""
  - name: fresh
    provider: openai
    model: gpt-4o-mini
    api_base: {emu.url}/v1
    api_key: sk-emulator
security: {{rate_limits: {{user: {{rps: 100000, burst: 100000}}}}}}
cache: {{enabled: true, models: {{fresh: {{enabled: false}}}}}}
"""
    gw = start_gateway(emulator_yaml(emu, extra), master_key=MASTER)
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=MASTER, max_retries=0) as sdk:
        ask(sdk)
        assert ask(sdk).headers["x-gateway-cache"] == "hit"
        fresh = sdk.chat.completions.with_raw_response.create(model="fresh", messages=QUESTION)
        assert "x-gateway-cache" not in fresh.headers  # off for that model name


def test_an_entry_that_cannot_be_decoded_is_dropped_and_counted(
    emu: EmulatorServer, start_gateway: GatewayFactory, redis_prefix: str
) -> None:
    gw = start_gateway(emulator_yaml(emu, CACHE), master_key=MASTER)
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=MASTER, max_retries=0) as sdk:
        key = ask(sdk).headers["x-gateway-cache-key"]
        client = redis.Redis.from_url(REDIS_URL)
        deadline = time.monotonic() + 5
        while not client.exists(f"{redis_prefix}:cache:default:{key}"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        client.set(f"{redis_prefix}:cache:default:{key}", b"\x00 not an entry")
        again = ask(sdk)
    assert again.headers["x-gateway-cache"] == "miss"
    assert again.parse().choices[0].message.content
    metrics = httpx.get(f"{gw.url}/metrics").text
    assert 'ai_gateway_cache_errors_total{kind="undecodable"} 1.0' in metrics
