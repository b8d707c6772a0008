"""Client text that reaches headers, metric labels or the tokenizer: refused before the upstream
is called (model names), bounded (metric labels), or answered truthfully (tokenizer limits)."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from conftest import GatewayFactory, emulator_yaml
from harness import EmulatorServer, GatewayServer

MESSAGES = [{"role": "user", "content": "hi"}]


def error_of(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text[:500]
    body = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]  # type: ignore[no-any-return]


def upstream_calls(emu: EmulatorServer) -> int:
    return len([r for r in emu.requests() if r["path"].startswith(("/v1/", "/v1beta/"))])


@pytest.fixture
def http(gateway: GatewayServer) -> httpx.Client:
    with httpx.Client(base_url=gateway.url, timeout=60) as c:
        yield c


BAD_NAMES = [
    "openai/gpt-中文",
    "openai/gpt-4o\r\nx-injected: 1",
    "openai/gpt\n4o",
    "openai/gpt\x00x",
    "openai/gpt 4o",
    "openai/gpt,4o",
    "openai/../../v1/files",
    "openai/" + "g" * 300,
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_model_name_is_400_before_the_upstream(
    http: httpx.Client, emu: EmulatorServer, name: str
) -> None:
    for path, body in (
        ("/v1/chat/completions", {"model": name, "messages": MESSAGES}),
        ("/v1/chat/completions", {"model": name, "messages": MESSAGES, "stream": True}),
        ("/v1/embeddings", {"model": name, "input": "hi"}),
        ("/v1/tokens/count", {"model": name, "input": "hi"}),
    ):
        err = error_of(http.post(path, json=body), 400)
        assert err["param"] == "model"
        assert err["code"] == "invalid_model_name"
        assert err["type"] == "invalid_request_error"
        assert "model name" in err["message"]
    err = error_of(
        http.post(
            "/v1/chat/completions",
            json={"model": "fast", "models": ["fast", name], "messages": MESSAGES},
        ),
        400,
    )
    assert (err["param"], err["code"]) == ("models[1]", "invalid_model_name")
    assert upstream_calls(emu) == 0


def test_model_name_limit_is_named(http: httpx.Client) -> None:
    err = error_of(
        http.post(
            "/v1/chat/completions",
            json={"model": "openai/" + "x" * 2_000_000, "messages": MESSAGES},
        ),
        400,
    )
    assert "at most 256 characters" in err["message"]
    err = error_of(
        http.post("/v1/chat/completions", json={"model": "gpt-中文", "messages": MESSAGES}), 400
    )
    assert "A-Z a-z 0-9 . _ - / : @" in err["message"]


@pytest.mark.parametrize(
    "name",
    [
        "openai/gpt-4o-mini",
        "openai/gpt-4o-mini@2024-07-18",
        "openai/ft:gpt-4o-mini:org::id",
        "openai/gpt-4.1_mini.v2",
    ],
)
def test_real_model_ids_stay_valid(client: openai.OpenAI, name: str) -> None:
    resp = client.chat.completions.with_raw_response.create(model=name, messages=MESSAGES)  # type: ignore[arg-type]
    assert resp.http_response.status_code == 200
    assert resp.headers["x-gateway-model"] == name


def test_configured_model_name_is_checked_at_load(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    from ai_gateway.settings import ConfigError

    with pytest.raises(ConfigError, match="model name may contain only"):
        start_gateway(emulator_yaml(emu, "  - {name: 'my model', provider: openai, model: gpt-4o}"))


def test_long_model_names_do_not_grow_metrics(http: httpx.Client, emu: EmulatorServer) -> None:
    before = len(http.get("/metrics").content)
    for i in range(3):
        name = f"openai/gpt-{i}-" + "m" * 240  # valid names, each near the longest
        http.post("/v1/chat/completions", json={"model": name, "messages": MESSAGES})
        http.post(
            "/v1/chat/completions",
            json={"model": "openai/" + "x" * 2_000_000, "messages": MESSAGES},
        )
    after = http.get("/metrics").content
    assert b"x" * 300 not in after
    assert len(after) - before < 200_000


def test_message_of_exactly_the_char_limit_is_400_not_500(
    http: httpx.Client, emu: EmulatorServer
) -> None:
    text = ("ab " * 333_334)[:1_000_000]  # the request limit's maximum (max_message_chars)
    err = error_of(
        http.post(
            "/v1/chat/completions",
            json={"model": "fast", "messages": [{"role": "user", "content": text}]},
        ),
        400,
    )
    assert err["code"] == "context_length_exceeded"
    assert "128,000 tokens" in err["message"]
    count = http.post("/v1/tokens/count", json={"model": "fast", "input": text})
    assert count.status_code == 200, count.text
    assert count.json()["tokens"] == 333_334  # "ab", then " ab" each
    assert upstream_calls(emu) == 0


def test_prompt_over_the_tokenizer_chunk_limit_is_counted(
    http: httpx.Client, emu: EmulatorServer
) -> None:
    text = "1 " * 110_000  # 220,000 tokens: past the tokenizer's 200,000 per call
    for model in ("fast", "openai/gpt-4o", "anthropic/claude-sonnet-4-5"):
        count = http.post(
            "/v1/tokens/count",
            json={"model": model, "messages": [{"role": "user", "content": text}]},
        )
        if model.startswith("anthropic"):  # no Anthropic key in this config
            assert count.status_code == 404
            continue
        assert count.status_code == 200, count.text
        assert count.json()["tokens"] >= 220_000
    err = error_of(
        http.post(
            "/v1/chat/completions",
            json={"model": "fast", "messages": [{"role": "user", "content": text}]},
        ),
        400,
    )
    assert err["code"] == "context_length_exceeded"
    assert upstream_calls(emu) == 0
