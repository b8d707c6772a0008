"""Routing state shared by several gateway instances through Redis, context windows through the
gateway, and capacity limits (usage-based strategy)."""

from __future__ import annotations

import re
import time

import httpx

from conftest import GatewayFactory
from harness import EmulatorServer, GatewayServer, chat, dep, served


def breaker_state(gw: GatewayServer, deployment: str) -> float | None:
    text = httpx.get(f"{gw.url}/metrics").text
    match = re.search(
        rf'ai_gateway_breaker_state{{deployment="{re.escape(deployment)}"}} (\S+)', text
    )
    return float(match.group(1)) if match else None


def test_two_instances_agree_on_a_tripped_breaker(
    start_gateway: GatewayFactory, emu: EmulatorServer, redis_prefix: str
) -> None:
    config = f"""
router:
  retries: 1
  breaker: {{failures: 2, window_s: 60, cooldown_s: 30}}
models:
  - name: pair
    deployments:
      - {dep(emu, "gpt-a", weight=1000)}
      - {dep(emu, "gpt-b", weight=0.001)}
"""
    first, second = start_gateway(config), start_gateway(config)
    ready = httpx.get(f"{second.url}/health/ready").json()["checks"]
    assert ready["circuit_breaker"]["detail"] == "shared via redis"
    emu.add_faults({"kind": "status", "status": 500, "model": "gpt-a", "count": 2})
    for _ in range(2):
        assert chat(first, "pair").status_code == 200  # each fails over from gpt-a to gpt-b
    assert served(emu).count("gpt-a") == 2
    assert breaker_state(first, "pair/0") == 2.0
    # The second instance hears of the trip (pub/sub): it never sent gpt-a anything itself.
    deadline = time.monotonic() + 2
    while breaker_state(second, "pair/0") != 2.0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert breaker_state(second, "pair/0") == 2.0
    for _ in range(5):
        resp = chat(second, "pair")
        assert resp.status_code == 200
        assert resp.headers["x-gateway-upstream-model"] == "gpt-b"
    assert served(emu).count("gpt-a") == 2
    # An instance started after the trip knows it too.
    third = start_gateway(config)
    assert chat(third, "pair").headers["x-gateway-upstream-model"] == "gpt-b"
    assert served(emu).count("gpt-a") == 2


def test_usage_based_respects_rpm_capacity_across_instances(
    start_gateway: GatewayFactory, emu: EmulatorServer, redis_prefix: str
) -> None:
    config = f"""
router: {{strategy: usage-based, retries: 0}}
models:
  - name: capped
    deployments:
      - {dep(emu, "gpt-a", rpm=2)}
      - {dep(emu, "gpt-b", rpm=1)}
"""
    first, second = start_gateway(config), start_gateway(config)
    codes = [chat(gw, "capped").status_code for gw in (first, second, first)]
    assert codes == [200, 200, 200]
    refused = chat(second, "capped")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "capacity_exceeded"
    assert int(refused.headers["retry-after"]) >= 1
    assert sorted(served(emu)) == ["gpt-a", "gpt-a", "gpt-b"]


CONTEXT = """
registry:
  - {{provider: openai, id: gpt-tiny, mode: chat, context_window: 300, max_output_tokens: 50}}
  - {{provider: openai, id: gpt-large, mode: chat, context_window: 100000, max_output_tokens: 4000}}
router:
  retries: 0
  reserve_output_tokens: 50
{router}
models:
  - name: tiny
    deployments: [{tiny}]
  - name: large
    deployments: [{large}]
"""


def context_config(emu: EmulatorServer, router: str = "") -> str:
    return CONTEXT.format(router=router, tiny=dep(emu, "gpt-tiny"), large=dep(emu, "gpt-large"))


def conversation(turns: int) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": "You are terse."}]
    for i in range(turns):
        messages.append({"role": "user", "content": f"question {i} " + "word " * 20})
        messages.append({"role": "assistant", "content": f"answer {i} " + "word " * 20})
    messages.append({"role": "user", "content": "and the last question?"})
    return messages


def post(
    gw: GatewayServer, model: str, messages: list[dict[str, str]], **extra: object
) -> httpx.Response:
    return httpx.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": model, "messages": messages, **extra},
        timeout=30,
    )


def test_prompt_over_the_window_is_a_clear_400(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    gw = start_gateway(context_config(emu))
    resp = post(gw, "tiny", conversation(10))
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert "300" in error["message"]
    assert "50" in error["message"]
    assert served(emu) == []  # never sent


def test_truncate_oldest_keeps_system_and_latest(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    gw = start_gateway(context_config(emu))
    messages = conversation(10)
    resp = post(gw, "tiny", messages, context_strategy="truncate-oldest")
    assert resp.status_code == 200, resp.text
    dropped = int(resp.headers["x-gateway-truncated-messages"])
    assert dropped > 0
    (sent,) = [r["body"]["messages"] for r in emu.requests() if r["path"].endswith("/completions")]
    assert len(sent) == len(messages) - dropped
    assert sent[0] == messages[0]
    assert sent[-1] == messages[-1]
    assert sent[1]["role"] == "user"


def test_fallback_to_a_larger_model(start_gateway: GatewayFactory, emu: EmulatorServer) -> None:
    gw = start_gateway(context_config(emu))
    resp = post(gw, "tiny", conversation(10), context_strategy="fallback")
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-gateway-model"] == "large"
    assert resp.headers["x-gateway-fallbacks"] == "large"
    configured = start_gateway(context_config(emu, "  context_window_fallbacks: {tiny: [large]}"))
    resp = post(configured, "tiny", conversation(10))
    assert resp.status_code == 200
    assert resp.headers["x-gateway-upstream-model"] == "gpt-large"
