"""`ai-gateway prompts` as an operator runs it: a real process on SQLite under
AI_GATEWAY_DATA_DIR; a label it moves is served by a running gateway on the same database."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import GatewayFactory, emulator_yaml
from harness import VENV_BIN, EmulatorServer

pytestmark = pytest.mark.integration

AI_GATEWAY = str(VENV_BIN / "ai-gateway")
TEMPLATE = """
description: Greets
template:
  model: fast
  messages:
    - role: system
      content: "Greet {{ name }} in {{ language }}."
variables:
  type: object
  properties: {name: {type: string}, language: {type: string}}
  required: [name, language]
"""


class Prompts:
    def __init__(self, data: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if "DATABASE_URL" not in k}
        self.env.pop("AI_GATEWAY_CONFIG", None)
        self.env.pop("REDIS_URL", None)
        self.env["AI_GATEWAY_DATA_DIR"] = str(data)

    def __call__(self, *args: str, status: int = 0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [AI_GATEWAY, "prompts", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=self.env,
            check=False,
        )
        assert result.returncode == status, result.stdout + result.stderr
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args).stdout)


def test_create_label_render_and_a_running_gateway_serves_it(
    tmp_path: Path, emu: EmulatorServer, start_gateway: GatewayFactory
) -> None:
    prompts = Prompts(tmp_path / "data")  # the gateway's data directory (conftest)
    spec = tmp_path / "greet.yaml"
    spec.write_text(TEMPLATE)
    created = prompts.json("create", "greet", "--file", str(spec), "--label", "production")
    assert (created["latest_version"], created["labels"]) == (1, {"production": 1})
    added = prompts.json("add-version", "greet", "--file", str(spec))
    assert added["version"] == 2
    assert prompts.json("label", "greet", "staging", "2")["labels"] == {
        "production": 1,
        "staging": 2,
    }
    listed = prompts.json("list")
    assert [(p["id"], p["latest_version"]) for p in listed] == [("greet", 2)]
    shown = prompts.json("show", "greet", "--version", "1")
    assert shown["version"]["template"]["messages"][0]["content"].startswith("Greet {{ name }}")
    rendered = prompts.json(
        "render", "greet", "--label", "staging", "--vars", '{"name": "Ada", "language": "Welsh"}'
    )
    assert rendered["version"] == 2
    assert rendered["request"]["messages"] == [{"role": "system", "content": "Greet Ada in Welsh."}]
    gw = start_gateway(emulator_yaml(emu))
    body = {"prompt": {"id": "greet", "variables": {"name": "Ada", "language": "Welsh"}}}
    resp = httpx.post(f"{gw.url}/v1/chat/completions", json=body, timeout=20)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-gateway-prompt"] == "greet@1"


def test_errors_are_plain_and_exit_non_zero(tmp_path: Path) -> None:
    prompts = Prompts(tmp_path / "data")
    missing = prompts("show", "nope", status=1)
    assert "No prompt template 'nope'" in missing.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text('template: {messages: [{role: user, content: "{{ x "}]}')
    refused = prompts("create", "bad", "--file", str(bad), status=1)
    assert "template syntax error" in refused.stderr
    spec = tmp_path / "ok.yaml"
    spec.write_text(TEMPLATE)
    prompts("create", "greet", "--file", str(spec))
    assert (
        "Variable 'language'"
        in prompts("render", "greet", "--vars", '{"name": "x"}', status=1).stderr
    )
    assert "has no version 9" in prompts("label", "greet", "production", "9", status=1).stderr
    assert prompts("label", "greet", "bad label!", "1", status=2).returncode == 2
    usage = subprocess.run(
        [AI_GATEWAY, "prompts", "--help"], capture_output=True, text=True, check=True
    )
    for action in ("create", "list", "show", "add-version", "label", "render"):
        assert action in usage.stdout
