"""POST /v1/code/generate end to end: a real gateway and the provider emulator, whose reply is
scripted with its `[[reply:...]]` marker (the answer a model would give). Files come back with
their syntax checked, streamed and not; the prompt is the prompt store's `code-generate`
template, which an operator replaces by moving its label; bad input is a clear 400."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import orjson
import pytest

from conftest import GatewayFactory, emulator_yaml
from harness import EmulatorServer, GatewayServer

pytestmark = pytest.mark.integration

MASTER = "sk-master-codegen-41ac"
ADMIN = {"Authorization": f"Bearer {MASTER}"}
ANSWER = """Added the helper and its settings.

```python src/util.py
def add(a: int, b: int) -> int:
    return a + b
```

```yaml settings.yaml
debug: true
```
"""
BROKEN = "```python app.py\ndef f(:\n    pass\n```\n"


def scripted(text: str) -> str:
    return f"[[reply:{base64.urlsafe_b64encode(text.encode()).decode()}]]"


def generate(gw: GatewayServer, **body: Any) -> httpx.Response:
    return httpx.post(f"{gw.url}/v1/code/generate", json=body, headers=ADMIN, timeout=30)


def upstream_messages(emu: EmulatorServer) -> list[dict[str, Any]]:
    sent = [r for r in emu.requests() if r["path"].endswith("/chat/completions")]
    messages: list[dict[str, Any]] = sent[-1]["body"]["messages"]
    return messages


@pytest.fixture
def gw(emu: EmulatorServer, start_gateway: GatewayFactory) -> GatewayServer:
    return start_gateway(emulator_yaml(emu), master_key=MASTER)


def test_the_answer_comes_back_as_checked_files(gw: GatewayServer, emu: EmulatorServer) -> None:
    resp = generate(
        gw,
        language="python",
        instructions="Add a helper that adds two numbers. " + scripted(ANSWER),
        files=[{"path": "src/util.py", "content": "# empty\n"}],
    )
    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert result["object"] == "code.generation"
    assert [(f["path"], f["language"], f["check"]) for f in result["files"]] == [
        ("src/util.py", "python", "ok"),
        ("settings.yaml", "yaml", "ok"),
    ]
    assert result["explanation"] == "Added the helper and its settings."
    assert result["usage"]["completion_tokens"] > 0
    assert resp.headers["x-gateway-prompt"] == "code-generate@1"
    system, user = upstream_messages(emu)
    assert "fenced code block" in system["content"]
    assert user["content"].startswith("Add a helper that adds two numbers.")
    assert "src/util.py\n```\n# empty\n" in user["content"]  # the request's file


def test_a_syntax_error_is_reported_with_its_line(gw: GatewayServer) -> None:
    resp = generate(gw, language="python", instructions="Write f. " + scripted(BROKEN))
    [file] = resp.json()["files"]
    assert (file["path"], file["check"]) == ("app.py", "error")
    assert file["error"].startswith("line 1:")


def test_streamed_text_deltas_then_one_result(gw: GatewayServer) -> None:
    with httpx.stream(
        "POST",
        f"{gw.url}/v1/code/generate",
        json={"instructions": "Add it. " + scripted(ANSWER), "stream": True},
        headers=ADMIN,
        timeout=30,
    ) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    decoded = [orjson.loads(e) for e in events[:-1]]
    deltas = [e["text"] for e in decoded if e["type"] == "delta"]
    assert len(deltas) > 1
    assert "".join(deltas) == ANSWER
    [result] = [e for e in decoded if e["type"] == "result"]
    assert decoded[-1] is result
    assert [f["check"] for f in result["files"]] == ["ok", "ok"]
    assert result["finish_reason"] == "stop"


def test_fill_in_the_middle_is_checked_in_place(gw: GatewayServer, emu: EmulatorServer) -> None:
    middle = "```python\n    return x * 2\n```\n"
    resp = generate(
        gw,
        language="python",
        instructions="Complete the function. " + scripted(middle),
        prefix="def double(x):\n",
        suffix="\nprint(double(2))\n",
        files=[{"path": "double.py", "content": ""}],
    )
    [file] = resp.json()["files"]
    assert (file["path"], file["check"], file["content"]) == (
        "double.py",
        "ok",
        "    return x * 2\n",
    )
    system, user = upstream_messages(emu)
    assert "between the prefix and the suffix" in system["content"]
    assert "Prefix:\n```\ndef double(x):\n" in user["content"]


def test_the_template_is_replaced_by_moving_its_label(
    gw: GatewayServer, emu: EmulatorServer
) -> None:
    assert generate(gw, instructions="First. " + scripted(ANSWER)).status_code == 200
    version = httpx.post(
        f"{gw.url}/v1/prompts/code-generate/versions",
        headers=ADMIN,
        json={
            "template": {
                "messages": [
                    {"role": "system", "content": "House style: tabs. Language {{ language }}."},
                    {"role": "user", "content": "{{ instructions }}"},
                ]
            },
            "variables": {"type": "object"},
            "labels": ["production"],
        },
    )
    assert version.status_code == 201, version.text
    resp = generate(gw, language="go", instructions="Second. " + scripted(ANSWER))
    assert resp.headers["x-gateway-prompt"] == "code-generate@2"
    system, _ = upstream_messages(emu)
    assert system["content"] == "House style: tabs. Language go."


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "instructions"),
        ({"instructions": "x", "files": [{"path": "a.py"}]}, "files[0].content"),
        ({"instructions": "x", "prefix": "a"}, None),
        ({"instructions": "x", "model": "no-such-model"}, "model"),
    ],
)
def test_bad_input_is_a_400_or_404_naming_what_is_wrong(
    gw: GatewayServer, body: dict[str, Any], param: str | None
) -> None:
    resp = generate(gw, **body)
    assert resp.status_code in (400, 404), resp.text
    error = resp.json()["error"]
    assert error["param"] == param
    assert error["message"]
