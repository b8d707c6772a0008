"""The `ai-gateway` command as a user runs it: a real process on a real port."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import openai
import pytest

from conftest import EMULATOR_KEY
from harness import VENV_BIN, EmulatorServer, free_port, start_process, wait_http
from harness import output as process_output

AI_GATEWAY = str(VENV_BIN / "ai-gateway")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [AI_GATEWAY, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_help_lists_the_documented_commands_and_flags() -> None:
    top = run("--help")
    assert top.returncode == 0
    for command in ("serve", "emulate", "check-config"):
        assert command in top.stdout
    serve = run("serve", "--help").stdout
    for flag in ("--config", "--host", "--port", "--workers", "--insecure-no-auth"):
        assert flag in serve
    emulate = run("emulate", "--help").stdout
    for flag in ("--port", "--services", "--memory-port", "--project-port", "--learning-port"):
        assert flag in emulate
    for flag in ("--qdrant", "--qdrant-port", "--qdrant-path", "--qdrant-api-key"):
        assert flag in emulate


def test_serve_starts_logs_and_answers(tmp_path: Path, emulator: EmulatorServer) -> None:
    config = tmp_path / "gw.yaml"
    config.write_text(
        "models:\n"
        f"  - {{name: fast, provider: openai, model: gpt-4o-mini, "
        f"api_base: '{emulator.url}/v1', api_key: '${{EMU_KEY}}'}}\n"
    )
    port = free_port()
    with start_process(
        [AI_GATEWAY, "serve", "--config", str(config), "--port", str(port)],
        env={"EMU_KEY": EMULATOR_KEY},
    ) as proc:
        wait_http(f"http://127.0.0.1:{port}/health", proc=proc)
        with openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0
        ) as sdk:
            reply = sdk.chat.completions.create(
                model="fast", messages=[{"role": "user", "content": "from a process"}]
            )
            assert "from a process" in (reply.choices[0].message.content or "")
        proc.terminate()
        output = process_output(proc, timeout=20)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so supervisors see the signal.
    assert proc.returncode in (0, -15)
    assert "Application shutdown complete" in output
    events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    starting = next(e for e in events if e["event"] == "starting")
    assert starting["url"] == f"http://127.0.0.1:{port}"
    assert starting["models"] == {"fast": ["openai/gpt-4o-mini"]}
    assert any(e["event"] == "authentication_disabled" for e in events)
    assert EMULATOR_KEY not in output


def test_bad_config_fails_fast_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("models:\n  - {name: x, provider: openai, model: m, weight: -1}\n")
    result = run("serve", "--config", str(config), "--port", str(free_port()))
    assert result.returncode == 2
    assert "models[0].weight" in result.stderr
    assert "greater than 0" in result.stderr
    check = run("check-config", "--config", str(config))
    assert check.returncode == 2
    assert "weight" in check.stderr


def test_refuses_public_bind_without_a_master_key() -> None:
    result = run("serve", "--host", "0.0.0.0", "--port", str(free_port()))
    assert result.returncode == 2
    assert "AI_GATEWAY_MASTER_KEY" in result.stderr
    assert "--insecure-no-auth" in result.stderr


def test_check_config_accepts_a_good_file(tmp_path: Path) -> None:
    config = tmp_path / "ok.yaml"
    config.write_text(
        "models:\n  - {name: local, provider: openai, model: llama3, "
        "api_base: 'http://127.0.0.1:11434/v1'}\n"
    )
    result = run("check-config", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "1 model names" in result.stdout


@pytest.mark.parametrize("workers", [2])
def test_multiple_workers_serve(tmp_path: Path, emulator: EmulatorServer, workers: int) -> None:
    config = tmp_path / "gw.yaml"
    config.write_text(
        f"models:\n  - {{name: fast, provider: openai, model: gpt-4o-mini, "
        f"api_base: '{emulator.url}/v1', api_key: {EMULATOR_KEY}}}\n"
    )
    port = free_port()
    with start_process(
        [
            AI_GATEWAY,
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
            "--workers",
            str(workers),
        ]
    ) as proc:
        # Two workers start slowly on a busy machine: a start-up wait, not a timing assertion.
        wait_http(f"http://127.0.0.1:{port}/health", proc=proc, timeout=90)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            for _ in range(6):
                resp = c.post(
                    "/v1/chat/completions",
                    json={"model": "fast", "messages": [{"role": "user", "content": "hi"}]},
                )
                assert resp.status_code == 200


def test_emulate_command_serves_all_three_formats() -> None:
    port = free_port()
    with start_process([AI_GATEWAY, "emulate", "--port", str(port)]) as proc:
        wait_http(f"http://127.0.0.1:{port}/v1/models", proc=proc)
        base = f"http://127.0.0.1:{port}"
        openai_resp = httpx.post(
            f"{base}/v1/chat/completions",
            headers={"Authorization": "Bearer k"},
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert openai_resp.json()["object"] == "chat.completion"
        anthropic_resp = httpx.post(
            f"{base}/v1/messages",
            headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
            json={
                "model": "claude-sonnet-4-5",
                "max_tokens": 50,
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
        assert anthropic_resp.json()["type"] == "message"
        gemini_resp = httpx.post(
            f"{base}/v1beta/models/gemini-2.5-flash:generateContent",
            headers={"x-goog-api-key": "k"},
            json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        )
        assert gemini_resp.json()["candidates"][0]["content"]["role"] == "model"
