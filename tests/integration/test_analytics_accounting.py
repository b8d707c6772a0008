"""Accounting end to end: after a mixed run over three providers (streams and not, with
failures), the analytics API's totals equal what the emulator says it served, token for token
and cent for cent; a SIGTERM during load loses no record, and neither does a kill -9 (the
writer's journal)."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from ai_gateway.model_registry import load_default_registry
from conftest import EMULATOR_KEY, GatewayFactory
from harness import VENV_BIN, EmulatorServer, free_port, start_process, wait_http

MODELS = {  # public name -> (provider, upstream model)
    "gpt": ("openai", "gpt-4o-mini"),
    "claude": ("anthropic", "claude-sonnet-4-5"),
    "gem": ("gemini", "gemini-2.5-flash"),
}


def mixed_yaml(emu: EmulatorServer) -> str:
    bases = {"openai": f"{emu.url}/v1", "anthropic": emu.url, "gemini": emu.url}
    entries = "\n".join(
        f"  - {{name: {name}, provider: {provider}, model: {model}, "
        f'api_base: "{bases[provider]}", api_key: {EMULATOR_KEY}}}'
        for name, (provider, model) in MODELS.items()
    )
    return f"""
router: {{retries: 0}}
models:
{entries}
"""


def run_mixed(base: str, emu: EmulatorServer) -> int:
    """Streams and non-streams on every provider, plus failures; returns requests sent."""
    sent = 0
    with httpx.Client(base_url=base, timeout=30) as client:
        for name, (provider, model) in MODELS.items():
            for i in range(3):
                body: dict[str, Any] = {
                    "model": name,
                    "messages": [
                        {"role": "user", "content": f"question {i} for {name} " * (i + 1)}
                    ],
                }
                assert client.post("/v1/chat/completions", json=body).status_code == 200
                stream = {**body, "stream": True, "stream_options": {"include_usage": True}}
                with client.stream("POST", "/v1/chat/completions", json=stream) as resp:
                    assert resp.status_code == 200
                    resp.read()
                sent += 2
            emu.add_faults({"kind": "status", "status": 500, "provider": provider, "model": model})
            assert (
                client.post(
                    "/v1/chat/completions",
                    json={"model": name, "messages": [{"role": "user", "content": "fail"}]},
                ).status_code
                >= 500
            )
            sent += 1
    return sent


def test_totals_match_what_the_emulator_served(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    gw = start_gateway(mixed_yaml(emu))
    sent = run_mixed(gw.url, emu)
    stats = emu.stats()["providers"]
    registry = load_default_registry()
    expected_cost = Decimal(0)
    expected: dict[str, tuple[int, int]] = {}
    for provider, model in MODELS.values():
        served = stats[provider][model]
        expected[provider] = (served["prompt_tokens"], served["completion_tokens"])
        info = registry.get(provider, model)
        assert info is not None
        assert info.input_price is not None
        assert info.output_price is not None
        expected_cost += (
            served["prompt_tokens"] * info.input_price
            + served["completion_tokens"] * info.output_price
        ) / Decimal(1_000_000)
    report = httpx.get(f"{gw.url}/ai/analytics/usage", params={"group_by": "provider"}).json()
    rows = {row["group"]: row for row in report["data"]}
    for provider, (prompt, completion) in expected.items():
        assert rows[provider]["prompt_tokens"] == prompt, provider
        assert rows[provider]["completion_tokens"] == completion, provider
        assert rows[provider]["errors"] == 1
    assert report["totals"]["requests"] == sent
    assert Decimal(report["totals"]["cost_usd"]) == expected_cost


def test_sigterm_during_load_loses_no_record(emu: EmulatorServer, tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(mixed_yaml(emu))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    answered: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            while not stop.is_set():
                try:
                    resp = client.post(
                        "/v1/chat/completions",
                        json={"model": "gpt", "messages": [{"role": "user", "content": "load"}]},
                    )
                except httpx.TransportError:
                    return  # the server has stopped accepting
                if resp.status_code == 200:
                    answered.append(resp.headers["x-request-id"])

    with start_process(
        [str(VENV_BIN / "ai-gateway"), "serve", "--config", str(config), "--port", str(port)],
        env={"AI_GATEWAY_DATA_DIR": str(tmp_path)},
    ) as proc:
        wait_http(f"{base}/health", proc=proc)
        workers = [threading.Thread(target=load) for _ in range(8)]
        for worker in workers:
            worker.start()
        while len(answered) < 200:
            assert proc.poll() is None
            threading.Event().wait(0.01)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) in (0, -signal.SIGTERM)
        stop.set()
        for worker in workers:
            worker.join(30)
    database = sqlite3.connect(tmp_path / "analytics.db")
    stored = {row[0] for row in database.execute("SELECT request_id FROM usage_records")}
    database.close()
    missing = set(answered) - stored
    assert not missing, f"{len(missing)} of {len(answered)} answered requests have no record"


def test_kill_9_loses_no_record_of_an_answered_request(emu: EmulatorServer, tmp_path: Path) -> None:
    """The writer flushes every half second; what it had not written when the process was killed
    is in its journal, and the next start writes it."""
    config = tmp_path / "gateway.yaml"
    config.write_text(mixed_yaml(emu))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [str(VENV_BIN / "ai-gateway"), "serve", "--config", str(config), "--port", str(port)]
    env = {"AI_GATEWAY_DATA_DIR": str(tmp_path)}
    answered: list[str] = []

    def serve_then_kill() -> None:
        with start_process(argv, env=env) as proc:
            wait_http(f"{base}/health", proc=proc)
            with httpx.Client(base_url=base, timeout=30) as client:
                for n in range(40):
                    resp = client.post(
                        "/v1/chat/completions",
                        json={
                            "model": "gpt",
                            "stream": n % 2 == 1,
                            "messages": [{"role": "user", "content": f"answer {n}"}],
                        },
                    )
                    assert resp.status_code == 200
                    answered.append(resp.headers["x-request-id"])
            proc.send_signal(signal.SIGKILL)  # at once: the last records are still buffered
            proc.wait(10)

    def stored() -> set[str]:
        database = sqlite3.connect(tmp_path / "analytics.db")
        try:
            return {row[0] for row in database.execute("SELECT request_id FROM usage_records")}
        finally:
            database.close()

    # The kill almost always finds records unwritten; in the rare case the writer had just
    # flushed, run again (else the restart below would prove nothing).
    for _ in range(3):
        serve_then_kill()
        if set(answered) - stored():
            break
    assert set(answered) - stored()
    assert list((tmp_path / "journal").glob("*.jsonl"))
    with start_process(argv, env=env) as proc:  # the same data folder: the journal is read
        wait_http(f"{base}/health", proc=proc)
        deadline = time.monotonic() + 10
        while set(answered) - stored() and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert not set(answered) - stored()
    assert len(stored()) == len(answered)  # none twice (request ids are unique in the table)
    assert not list((tmp_path / "journal").glob("*.jsonl"))  # all written: nothing left
