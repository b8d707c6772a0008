"""What one request can reach: every model it may be served by (fallbacks of every kind, fan-out
branches) passes the caller's allowed models and the models' limits. A fallback the caller may
not use is skipped, and when nothing is left the client gets the original error; a refused
request reaches no upstream."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conftest import GatewayFactory
from harness import EMULATOR_KEY, EmulatorServer, GatewayServer, dep, served

pytestmark = pytest.mark.integration

MASTER = "sk-master-reach-5d1e9a7c3b"

CONFIG = """
providers:
  openai: {{api_key: {key}, api_base: "{url}/v1"}}
registry:
  - {{provider: openai, id: gpt-tiny, mode: chat, context_window: 300, max_output_tokens: 50}}
  - {{provider: openai, id: gpt-large, mode: chat, context_window: 100000, max_output_tokens: 4000}}
  - {{provider: openai, id: gpt-huge, mode: chat, context_window: 200000, max_output_tokens: 4000}}
router:
  retries: 0
  reserve_output_tokens: 50
  fallbacks: {{tiny: [large], huge: [smart]}}
  content_policy_fallbacks: {{tiny: [large]}}
security:
  rate_limits:
    user: {{rps: 1000, burst: 1000}}
    models: {{smart: {{rps: 0.4, burst: 1}}}}  # one request per 2.5 s: slow enough for a test
models:
  - name: tiny
    deployments: [{tiny}]
  - name: large
    deployments: [{large}]
  - name: huge
    deployments: [{huge}]
  - name: smart
    deployments: [{smart}]
"""


@pytest.fixture
def gw(emu: EmulatorServer, start_gateway: GatewayFactory) -> GatewayServer:
    config = CONFIG.format(
        key=EMULATOR_KEY,
        url=emu.url,
        tiny=dep(emu, "gpt-tiny"),
        large=dep(emu, "gpt-large"),
        huge=dep(emu, "gpt-huge"),
        smart=dep(emu, "gpt-smart"),
    )
    return start_gateway(config, master_key=MASTER)


@pytest.fixture
def admin(gw: GatewayServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=gw.url, headers={"Authorization": f"Bearer {MASTER}"}, timeout=10
    ) as client:
        yield client


def new_key(admin: httpx.Client, models: list[str] | None = None) -> str:
    fields: dict[str, Any] = {"user": "mallory"}
    if models is not None:
        fields["models"] = models
    resp = admin.post("/admin/keys", json=fields)
    assert resp.status_code == 201, resp.text
    key: str = resp.json()["key"]
    return key


def long_prompt() -> list[dict[str, str]]:
    """Well over gpt-tiny's 300-token window, well under the others'."""
    return [{"role": "user", "content": "word " * 600}]


def post(gw: GatewayServer, key: str, **body: Any) -> httpx.Response:
    body.setdefault("messages", [{"role": "user", "content": "hello"}])
    return httpx.post(
        f"{gw.url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def test_context_window_fallback_skips_models_the_key_may_not_use(
    gw: GatewayServer, admin: httpx.Client, emu: EmulatorServer
) -> None:
    only_tiny = new_key(admin, ["tiny"])
    for stream in (False, True):
        resp = post(
            gw,
            only_tiny,
            model="tiny",
            messages=long_prompt(),
            context_strategy="fallback",
            stream=stream,
        )
        assert resp.status_code == 400, resp.text
        error = resp.json()["error"]
        assert error["code"] == "context_length_exceeded"  # the original error, as it was
        assert "300" in error["message"]
    assert served(emu) == []  # nothing reached any upstream

    # Larger models are tried smallest first; one the key may not use is skipped, not taken.
    tiny_and_huge = new_key(admin, ["tiny", "huge"])
    resp = post(
        gw, tiny_and_huge, model="tiny", messages=long_prompt(), context_strategy="fallback"
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-gateway-model"] == "huge"
    assert resp.headers["x-gateway-fallbacks"] == "huge"
    assert served(emu) == ["gpt-huge"]


def test_exhausted_group_fallback_needs_the_key_to_allow_it(
    gw: GatewayServer, admin: httpx.Client, emu: EmulatorServer
) -> None:
    emu.add_faults({"kind": "status", "status": 503, "model": "gpt-tiny", "count": 2})
    resp = post(gw, new_key(admin, ["tiny"]), model="tiny")
    assert resp.status_code == 503, resp.text
    assert resp.json()["error"]["code"] == "upstream_unavailable"
    assert "x-gateway-fallbacks" not in resp.headers
    assert served(emu) == ["gpt-tiny"]
    # A key that may use the fallback gets it, as before.
    resp = post(gw, new_key(admin, ["tiny", "large"]), model="tiny")
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-gateway-fallbacks"] == "large"


def test_a_fallback_passes_its_models_rate_limits(
    gw: GatewayServer, admin: httpx.Client, emu: EmulatorServer
) -> None:
    key = new_key(admin)
    assert post(gw, key, model="smart").status_code == 200  # smart's one request, used
    # huge fails; its fallback, smart, admits no request now: skipped, huge's own error stands.
    emu.add_faults({"kind": "status", "status": 503, "model": "gpt-huge", "count": 2})
    resp = post(gw, key, model="huge")
    assert resp.status_code == 503, resp.text
    assert "x-gateway-fallbacks" not in resp.headers
    assert served(emu) == ["gpt-smart", "gpt-huge"]
    time.sleep(2.6)  # smart's bucket refills: the same fallback is taken
    resp = post(gw, key, model="huge")
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-gateway-fallbacks"] == "smart"
    assert served(emu) == ["gpt-smart", "gpt-huge", "gpt-huge", "gpt-smart"]


def test_content_policy_fallback_needs_the_key_to_allow_it(
    gw: GatewayServer, admin: httpx.Client, emu: EmulatorServer
) -> None:
    emu.add_faults({"kind": "safety_block", "stage": "prompt", "model": "gpt-tiny"})
    resp = post(gw, new_key(admin, ["tiny"]), model="tiny")
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "content_filter"
    assert served(emu) == ["gpt-tiny"]


def test_fanout_branches_pass_the_models_rate_limits(
    gw: GatewayServer, admin: httpx.Client, emu: EmulatorServer
) -> None:
    key = new_key(admin)
    # `smart` admits one request at once (burst 1): eight branches of it are eight requests for
    # it, more than it ever admits at once, so the request is refused whole (400: a retry cannot
    # cure it) and nothing is sent upstream.
    for mode in ("all", "first"):
        for _ in range(5):
            resp = post(gw, key, model="tiny", models=["smart"] * 8, fanout=mode)
            assert resp.status_code == 400, resp.text
            error = resp.json()["error"]
            assert error["code"] == "too_many_model_calls"
            assert error["param"] == "models"
            assert "'smart' 8 times" in error["message"]
    assert served(emu) == []

    # One branch of `smart` is one request for it: admitted once, then refused while the
    # bucket refills, though the request names `tiny` as its model.
    first = post(gw, key, model="tiny", models=["smart", "tiny"])
    second = post(gw, key, model="tiny", models=["tiny", "smart"])
    assert [first.status_code, second.status_code] == [200, 429], second.text
    assert "model 'smart'" in second.json()["error"]["message"]
    assert int(second.headers["retry-after"]) >= 1
    assert sorted(served(emu)) == ["gpt-smart", "gpt-tiny"]


def test_fanout_branches_pass_the_keys_allowed_models(
    gw: GatewayServer, admin: httpx.Client, emu: EmulatorServer
) -> None:
    resp = post(gw, new_key(admin, ["tiny"]), model="tiny", models=["tiny", "smart"])
    assert resp.status_code == 403, resp.text
    assert resp.json()["error"]["code"] == "model_not_allowed"
    assert "smart" in resp.json()["error"]["message"]
    assert served(emu) == []
