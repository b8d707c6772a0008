"""The router against the emulator's injected failures: a request succeeds whenever some allowed
deployment can serve it, client errors are not retried, and nobody gets an empty success."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from conftest import GatewayFactory
from harness import EmulatorServer, chat, dep, served


def two_deployments(emu: EmulatorServer, router: str = "", extra_models: str = "") -> str:
    return f"""
router:
  retries: 2
  backoff_base_s: 0.01
{router}
models:
  - name: pair
    deployments:
      - {dep(emu, "gpt-a")}
      - {dep(emu, "gpt-b")}
  - name: solo
    deployments:
      - {dep(emu, "gpt-solo")}
  - name: backup
    deployments:
      - {dep(emu, "gpt-backup")}
{extra_models}
"""


def test_single_deployment_retries_a_500(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    gw = start_gateway(two_deployments(emu))
    emu.add_faults({"kind": "status", "status": 500, "model": "gpt-solo"})
    resp = chat(gw, "solo")
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"]
    assert resp.headers["x-gateway-attempts"] == "2"
    assert resp.headers["x-gateway-deployment"] == "solo/0"
    assert served(emu) == ["gpt-solo", "gpt-solo"]


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "status", "status": 429, "retry_after": 30},
        {"kind": "status", "status": 503},
        {"kind": "drop"},
    ],
)
def test_failure_moves_to_the_other_deployment_at_once(
    start_gateway: GatewayFactory, emu: EmulatorServer, fault: dict[str, Any]
) -> None:
    gw = start_gateway(two_deployments(emu))
    emu.add_faults({**fault, "model": "gpt-a", "count": 5})
    for _ in range(4):
        started = time.monotonic()
        resp = chat(gw, "pair")
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-gateway-upstream-model"] == "gpt-b"
        assert time.monotonic() - started < 2  # no Retry-After wait when another one is free


def test_timeout_is_retried_elsewhere(start_gateway: GatewayFactory, emu: EmulatorServer) -> None:
    config = f"""
router: {{retries: 1}}
models:
  - name: pair
    deployments:
      - {dep(emu, "gpt-slow", timeout_s=0.3)}
      - {dep(emu, "gpt-fast", timeout_s=0.3)}
"""
    gw = start_gateway(config)
    emu.add_faults({"kind": "delay", "seconds": 3, "model": "gpt-slow", "count": 10})
    for _ in range(3):
        resp = chat(gw, "pair")
        assert resp.status_code == 200
        assert resp.headers["x-gateway-upstream-model"] == "gpt-fast"


def test_client_errors_are_not_retried(start_gateway: GatewayFactory, emu: EmulatorServer) -> None:
    gw = start_gateway(two_deployments(emu))
    emu.add_faults({"kind": "status", "status": 400, "model": "gpt-solo"})
    resp = chat(gw, "solo")
    assert resp.status_code == 400
    assert served(emu) == ["gpt-solo"]


def test_exhausted_group_falls_back(start_gateway: GatewayFactory, emu: EmulatorServer) -> None:
    gw = start_gateway(two_deployments(emu, router="  fallbacks: {solo: [backup]}"))
    emu.add_faults({"kind": "status", "status": 500, "model": "gpt-solo", "count": 10})
    resp = chat(gw, "solo")
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-gateway-fallbacks"] == "backup"
    assert resp.headers["x-gateway-model"] == "backup"
    assert resp.headers["x-gateway-attempts"] == "4"  # 3 on solo, 1 on backup
    metrics = httpx.get(f"{gw.url}/metrics").text
    assert (
        'ai_gateway_fallbacks_total{from_model="solo",reason="exhausted",to_model="backup"} 1.0'
        in metrics
    )


def test_everything_down_is_an_error_never_an_empty_success(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    gw = start_gateway(two_deployments(emu, router="  fallbacks: {solo: [backup]}"))
    emu.add_faults(
        {"kind": "status", "status": 503, "model": "gpt-solo", "count": 10},
        {"kind": "status", "status": 503, "model": "gpt-backup", "count": 10},
    )
    resp = chat(gw, "solo")
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "upstream_unavailable"


def test_overall_deadline_bounds_retries(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    config = f"""
router: {{retries: 5, timeout_s: 0.6}}
models:
  - name: slow
    deployments: [{dep(emu, "gpt-slow")}]
"""
    gw = start_gateway(config)
    emu.add_faults({"kind": "delay", "seconds": 5, "model": "gpt-slow", "count": 10})
    started = time.monotonic()
    resp = chat(gw, "slow")
    assert resp.status_code == 504
    assert "deadline" in resp.json()["error"]["message"]
    assert time.monotonic() - started < 2


def test_stream_fails_over_before_the_first_token(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    config = f"""
router: {{retries: 2}}
models:
  - name: pair
    deployments:
      - {dep(emu, "gpt-a", weight=1000)}
      - {dep(emu, "gpt-b", weight=0.001)}
"""
    gw = start_gateway(config)
    # gpt-a (almost always picked first) sends its role chunk, then drops: no token has reached
    # the client yet, so the stream moves to gpt-b without the client noticing.
    emu.add_faults({"kind": "drop_mid_stream", "after_chunks": 1, "model": "gpt-a", "count": 5})
    for _ in range(2):
        with httpx.stream(
            "POST",
            f"{gw.url}/v1/chat/completions",
            json={"model": "pair", "messages": [{"role": "user", "content": "s"}], "stream": True},
            timeout=30,
        ) as resp:
            assert resp.status_code == 200
            assert resp.headers["x-gateway-upstream-model"] == "gpt-b"
            assert resp.headers["x-gateway-attempts"] == "2"
            events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        assert not any('"error"' in e for e in events)
        roles = [e for e in events if '"role"' in e]
        assert len(roles) == 1  # the failed attempt's role chunk never reached the client


def test_stream_failing_after_the_first_token_ends_with_an_error_event(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    gw = start_gateway(two_deployments(emu))
    emu.add_faults({"kind": "drop_mid_stream", "after_chunks": 3, "model": "gpt-solo"})
    with httpx.stream(
        "POST",
        f"{gw.url}/v1/chat/completions",
        json={"model": "solo", "messages": [{"role": "user", "content": "s"}], "stream": True},
        timeout=30,
    ) as resp:
        events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    assert "[DONE]" not in events
    assert "error" in json.loads(events[-1])
    assert served(emu) == ["gpt-solo"]  # no second attempt once tokens reached the client


def test_circuit_opens_and_probes(start_gateway: GatewayFactory, emu: EmulatorServer) -> None:
    config = f"""
router:
  retries: 2
  breaker: {{failures: 2, window_s: 60, cooldown_s: 3}}
models:
  - name: pair
    deployments:
      - {dep(emu, "gpt-a", weight=1000)}
      - {dep(emu, "gpt-b", weight=0.001)}
"""
    # The cooldown outlasts the six requests on a loaded machine (a shorter one let a probe
    # through before the count below).
    gw = start_gateway(config)
    emu.add_faults({"kind": "status", "status": 500, "model": "gpt-a", "count": 2})
    # Force traffic onto gpt-a until it trips: each failure moves the request to gpt-b.
    for _ in range(6):
        assert chat(gw, "pair").status_code == 200
    calls_to_a = served(emu).count("gpt-a")
    assert calls_to_a == 2, "after two failures gpt-a is skipped while its circuit is open"
    metrics = httpx.get(f"{gw.url}/metrics").text
    assert 'ai_gateway_breaker_state{deployment="pair/0"} 2.0' in metrics
    time.sleep(3.1)  # cooldown over: one probe goes to gpt-a and closes the circuit
    for _ in range(12):
        assert chat(gw, "pair").status_code == 200
    assert served(emu).count("gpt-a") > calls_to_a
    metrics = httpx.get(f"{gw.url}/metrics").text
    assert 'ai_gateway_breaker_state{deployment="pair/0"} 0.0' in metrics


def test_hedged_request_takes_the_faster_deployment(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    config = f"""
router:
  strategy: weighted
  hedge: {{pair: {{after_s: 0.2}}}}
models:
  - name: pair
    deployments:
      - {dep(emu, "gpt-a", weight=1000)}
      - {dep(emu, "gpt-b", weight=0.001)}
"""
    gw = start_gateway(config)
    emu.add_faults({"kind": "delay", "seconds": 3, "model": "gpt-a"})
    started = time.monotonic()
    resp = chat(gw, "pair")
    elapsed = time.monotonic() - started
    assert resp.status_code == 200
    assert resp.headers["x-gateway-hedged"] == "true"
    assert resp.headers["x-gateway-upstream-model"] == "gpt-b"
    assert elapsed < 2


def test_fanout_all_and_first(start_gateway: GatewayFactory, emu: EmulatorServer) -> None:
    gw = start_gateway(two_deployments(emu))
    emu.add_faults({"kind": "status", "status": 400, "model": "gpt-backup"})
    resp = chat(gw, "solo", models=["solo", "backup", "pair"], fanout="all")
    assert resp.status_code == 200
    choices = resp.json()["choices"]
    assert [c["model"] for c in choices] == ["solo", "backup", "pair"]
    assert choices[0]["message"]["content"]
    assert choices[1]["error"]["type"] == "invalid_request_error"
    assert choices[2]["message"]["content"]
    emu.add_faults({"kind": "delay", "seconds": 3, "model": "gpt-solo"})
    started = time.monotonic()
    first = chat(gw, "solo", models=["solo", "backup"], fanout="first")
    assert first.status_code == 200
    assert first.headers["x-gateway-model"] == "backup"
    assert time.monotonic() - started < 2
    bad = chat(gw, "solo", fanout="all")
    assert bad.status_code == 400


def test_gateway_fields_never_reach_the_upstream(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    gw = start_gateway(two_deployments(emu))
    assert chat(gw, "solo", context_strategy="truncate-oldest").status_code == 200
    (sent,) = [r["body"] for r in emu.requests() if r["path"].endswith("/chat/completions")]
    assert "context_strategy" not in sent
    assert "models" not in sent
    bad = chat(gw, "solo", context_strategy="shrink")
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "context_strategy"


def test_content_policy_refusal_falls_back(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    gw = start_gateway(two_deployments(emu, router="  content_policy_fallbacks: {solo: [backup]}"))
    emu.add_faults({"kind": "safety_block", "stage": "prompt", "model": "gpt-solo"})
    resp = chat(gw, "solo")
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-gateway-model"] == "backup"
    assert served(emu) == ["gpt-solo", "gpt-backup"]
    # Without a content-policy fallback the refusal is the client's answer: 400, not retried.
    emu.add_faults({"kind": "safety_block", "stage": "prompt", "model": "gpt-backup"})
    refused = chat(gw, "backup")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "content_filter"


@pytest.mark.parametrize("kind", ["drop_mid_stream", "error_event"])
def test_streams_failing_after_the_first_token_open_the_circuit(
    start_gateway: GatewayFactory, emu: EmulatorServer, kind: str
) -> None:
    config = f"""
router:
  retries: 2
  breaker: {{failures: 3, window_s: 60, cooldown_s: 60}}
models:
  - name: pair
    deployments:
      - {dep(emu, "gpt-a", weight=1000)}
      - {dep(emu, "gpt-b", weight=0.001)}
"""
    gw = start_gateway(config)
    # gpt-a (almost always picked) fails every stream after a few chunks (a cut connection, an
    # error event): tokens have reached the client, so each of these requests fails, and each
    # failure counts once against gpt-a; three open its circuit.
    emu.add_faults({"kind": kind, "after_chunks": 3, "model": "gpt-a", "count": 10})
    outcomes = []
    for _ in range(6):
        with httpx.stream(
            "POST",
            f"{gw.url}/v1/chat/completions",
            json={"model": "pair", "messages": [{"role": "user", "content": "s"}], "stream": True},
            timeout=30,
        ) as resp:
            assert resp.status_code == 200
            events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
        outcomes.append((resp.headers["x-gateway-upstream-model"], events[-1] == "[DONE]"))
    assert outcomes[:3] == [("gpt-a", False)] * 3
    assert outcomes[3:] == [("gpt-b", True)] * 3  # gpt-a's circuit is open
    assert served(emu).count("gpt-a") == 3
    metrics = httpx.get(f"{gw.url}/metrics").text
    assert 'ai_gateway_breaker_state{deployment="pair/0"} 2.0' in metrics
