"""`ai-gateway serve` with nothing configured: the labelled demo provider answers, in every wire
format, streamed or not, through the official OpenAI SDK; a real key turns it off."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from conftest import PROVIDER_ENV
from harness import VENV_BIN, free_port, start_process, wait_http
from harness import output as process_output

AI_GATEWAY = str(VENV_BIN / "ai-gateway")
# Nothing configured: every provider variable blank (an empty value counts as unset).
NOTHING = dict.fromkeys(PROVIDER_ENV, "")
DEMO_HEADER = "x-gateway-demo"


@pytest.fixture(scope="module")
def demo_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    cwd = tmp_path_factory.mktemp("demo")
    with start_process([AI_GATEWAY, "serve", "--port", str(port)], env=NOTHING, cwd=cwd) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/health", proc=proc)
        yield url


@pytest.mark.parametrize("model", ["demo-gpt", "demo-claude", "demo-gemini"])
def test_every_wire_format_answers_without_a_key(demo_gateway: str, model: str) -> None:
    with openai.OpenAI(base_url=f"{demo_gateway}/v1", api_key="unused", max_retries=0) as sdk:
        raw = sdk.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "Hello demo"}]
        )
        assert raw.headers[DEMO_HEADER].startswith("built-in emulator")
        reply = raw.parse()
        assert reply.choices[0].message.content.startswith("Emulated reply to: Hello demo")
        assert reply.usage is not None
        assert reply.usage.completion_tokens > 0

        with sdk.chat.completions.with_streaming_response.create(
            model=model,
            messages=[{"role": "user", "content": "Stream it"}],
            stream=True,
            stream_options={"include_usage": True},
        ) as response:
            assert DEMO_HEADER in response.headers
            chunks = list(response.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Emulated reply to: Stream it")
    assert chunks[-1].usage is not None


def test_embeddings_and_models_are_labelled(demo_gateway: str) -> None:
    with openai.OpenAI(base_url=f"{demo_gateway}/v1", api_key="unused", max_retries=0) as sdk:
        vectors = sdk.embeddings.create(model="demo-embedding", input=["a", "b"])
        assert len(vectors.data) == 2
        assert vectors.data[0].embedding
        models = {m.id: m.model_dump() for m in sdk.models.list()}
    for name in ("demo-gpt", "demo-claude", "demo-gemini", "demo-embedding"):
        assert models[name]["demo"] is True
        assert models[name]["owned_by"] == "ai-gateway-demo"
    # Every answer carries the label, errors and probes included.
    missing = httpx.post(
        f"{demo_gateway}/v1/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]},
    )
    assert missing.status_code == 404
    assert DEMO_HEADER in missing.headers
    assert DEMO_HEADER in httpx.get(f"{demo_gateway}/health").headers


def test_a_real_key_turns_demo_mode_off(tmp_path: os.PathLike[str]) -> None:
    port = free_port()
    env = {**NOTHING, "OPENAI_API_KEY": "sk-not-used-in-this-test"}
    with start_process([AI_GATEWAY, "serve", "--port", str(port)], env=env, cwd=tmp_path) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/health", proc=proc)
        ids = [m["id"] for m in httpx.get(f"{url}/v1/models").json()["data"]]
        assert not any(i.startswith("demo-") for i in ids)
        assert DEMO_HEADER not in httpx.get(f"{url}/health").headers
        proc.terminate()
        events = [
            json.loads(line)
            for line in process_output(proc, timeout=20).splitlines()
            if line.startswith("{")
        ]
    starting = next(e for e in events if e["event"] == "starting")
    assert starting["demo"] is False


def test_a_terminal_gets_readable_next_steps(tmp_path: os.PathLike[str]) -> None:
    port = free_port()
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [AI_GATEWAY, "serve", "--port", str(port)],
        env={**os.environ, **NOTHING},
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=terminal,
    )
    os.close(terminal)
    seen = b""
    try:
        deadline = time.monotonic() + 30
        while b"Stop: Ctrl-C" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if ready:
                seen += os.read(controller, 65536)
    finally:
        proc.terminate()
        proc.wait(20)
        os.close(controller)
    text = seen.decode(errors="replace")
    assert f"listening on http://127.0.0.1:{port}" in text
    assert "DEMO MODE" in text
    for name in ("demo-gpt", "demo-claude", "demo-gemini"):
        assert name in text
    assert f"curl -s http://127.0.0.1:{port}/v1/chat/completions" in text
    assert "OPENAI_API_KEY" in text  # how to add a key
