"""Scanning a large prompt never stalls the gateway's other clients (issue 12, defect 4).

The gateway runs in its own process (so that this test's client threads do not share its GIL)
with the built-in `default-pii` policy; one client sends the attacker's request (two user
messages of `"1 " * 499999`, about 2 MB, a worst case for the card detector) while another
polls `/health` and records the slowest answer. A `block` rule matches the last word of the
request, so the whole prompt is scanned and nothing else (routing, the provider) follows."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest

from harness import EMULATOR_KEY, VENV_BIN, EmulatorServer, free_port, start_process, wait_http

pytestmark = pytest.mark.integration


def test_health_answers_promptly_while_a_large_prompt_is_scanned(
    emu: EmulatorServer, tmp_path: Path
) -> None:
    config = tmp_path / "gw.yaml"
    config.write_text(
        f"models:\n  - {{name: fast, provider: openai, model: gpt-4o-mini, "
        f"api_base: '{emu.url}/v1', api_key: {EMULATOR_KEY}}}\n"
        "security:\n  guardrails:\n    policies:\n      - name: stop\n        rules:\n"
        "          - {name: stop-word, detector: deny_list, words: [halt], action: block}\n"
        "    default: [default-pii, stop]\n"
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [str(VENV_BIN / "ai-gateway"), "serve", "--config", str(config), "--port", str(port)]
    text = "1 " * 499999
    body = {
        "model": "fast",
        "messages": [
            {"role": "user", "content": text},
            {"role": "user", "content": text[:-6] + "halt"},
        ],
    }
    with start_process(args, env={"TMPDIR": str(tmp_path)}) as proc:
        wait_http(f"{url}/health", proc=proc, timeout=30)
        results: list[httpx.Response] = []
        # Encoded here: encoding 2 MB in the sender thread would hold this process's GIL and
        # slow the polling thread, whatever the gateway does.
        raw = json.dumps(body).encode()
        sender = threading.Thread(
            target=lambda: results.append(
                httpx.post(
                    f"{url}/v1/chat/completions",
                    content=raw,
                    headers={"content-type": "application/json"},
                    timeout=120,
                )
            )
        )
        with httpx.Client(base_url=url, timeout=60) as client:
            client.get("/health")  # the connection is open before the big request starts
            sender.start()
            slowest = 0.0
            polls = 0
            while sender.is_alive():
                started = time.perf_counter()
                assert client.get("/health").status_code == 200
                slowest = max(slowest, time.perf_counter() - started)
                polls += 1
                time.sleep(0.005)
        sender.join()
    assert results[0].status_code == 400, results[0].text
    error = results[0].json()["error"]
    assert (error["code"], error["param"]) == ("content_filter", "messages[1].content")
    assert polls >= 5, "the request ended before /health could be measured"
    # The goal is 50 ms; the bound leaves room for a slow, shared 2-core machine (before the fix
    # /health waited for the whole scan: about 18 s).
    assert slowest < 0.25, f"/health took {slowest * 1000:.0f} ms while the prompt was scanned"
