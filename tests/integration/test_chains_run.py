"""Chains end to end: a real gateway and the provider emulator, whose replies are scripted with
its `[[reply:...]]` marker passed in through the chain's variables. Step 1 answers JSON, step 2
uses a field of it; each step is its own usage record `<request id>.<n>`; the step and time
bounds stop a run with a clear error; unknown chains, versions and labels are 404s."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
import orjson
import pytest

from conftest import GatewayFactory, emulator_yaml
from harness import EmulatorServer, GatewayServer

pytestmark = pytest.mark.integration

MASTER = "sk-master-chains-7d21"
ADMIN = {"Authorization": f"Bearer {MASTER}"}
CITY_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
STEPS: list[dict[str, Any]] = [
    {
        "name": "extract",
        "prompt": {"id": "extract"},
        "output": {"json_schema": CITY_SCHEMA},
        "variables": {"text": "{{ text }}"},
    },
    {
        "name": "write",
        "prompt": {"id": "write"},
        "variables": {"city": "{{ steps.extract.city }}", "marker": "{{ reply }}"},
    },
]
SLOW_MODEL = """  - name: slow
    provider: openai
    model: gpt-4o
    api_base: {url}/v1
    api_key: sk-emulator
"""


def scripted(text: str) -> str:
    return f"[[reply:{base64.urlsafe_b64encode(text.encode()).decode()}]]"


def api(gw: GatewayServer, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{gw.url}{path}", headers=ADMIN, timeout=30, **kwargs)


def setup_templates(gw: GatewayServer) -> None:
    for template_id, content in (
        ("extract", "Find the city in: {{ text }}"),
        ("write", "Write about {{ city }}. {{ marker }}"),
    ):
        made = api(
            gw,
            "POST",
            "/v1/prompts",
            json={
                "id": template_id,
                "template": {"model": "fast", "messages": [{"role": "user", "content": content}]},
            },
        )
        assert made.status_code == 201, made.text


def create_chain(gw: GatewayServer, steps: list[dict[str, Any]] = STEPS, **extra: Any) -> None:
    made = api(gw, "POST", "/v1/chains", json={"id": "trip", "steps": steps, **extra})
    assert made.status_code == 201, made.text


def inputs(postcard: str = "A postcard from Lisbon.") -> dict[str, str]:
    return {
        "text": "I flew to Lisbon. " + scripted('{"city": "Lisbon"}'),
        "reply": scripted(postcard),
    }


def run(gw: GatewayServer, **body: Any) -> httpx.Response:
    return api(gw, "POST", "/ai/chains/trip/run", json={"variables": inputs(), **body})


def user_messages(emu: EmulatorServer) -> list[str]:
    sent = [r for r in emu.requests() if r["path"].endswith("/chat/completions")]
    return [r["body"]["messages"][-1]["content"] for r in sent]


def wait_rows(gw: GatewayServer, request_ids: list[str]) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + 10
    found: dict[str, dict[str, Any]] = {}
    while len(found) < len(request_ids) and time.monotonic() < deadline:
        for request_id in request_ids:
            rows = api(
                gw,
                "GET",
                "/ai/analytics/requests",
                params={"start": "1h", "request_id": request_id},
            ).json()["data"]
            if rows:
                found[request_id] = rows[0]
        time.sleep(0.1)
    return found


@pytest.fixture
def gw(emu: EmulatorServer, start_gateway: GatewayFactory) -> GatewayServer:
    server = start_gateway(emulator_yaml(emu), master_key=MASTER)
    setup_templates(server)
    return server


def test_step_two_uses_a_field_of_step_ones_json(gw: GatewayServer, emu: EmulatorServer) -> None:
    create_chain(gw)
    resp = run(gw, include_intermediate=True)
    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert result["object"] == "chain.run"
    assert (result["chain"], result["version"]) == ("trip", 1)
    assert result["output"] == "A postcard from Lisbon."
    extract, write = result["steps"]
    assert (extract["name"], extract["model"], extract["output"]) == (
        "extract",
        "fast",
        {"city": "Lisbon"},
    )
    assert write["output"] == "A postcard from Lisbon."
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        assert result["usage"][key] == extract["usage"][key] + write["usage"][key] > 0
    assert resp.headers["x-gateway-chain"] == "trip@1"
    first, second = user_messages(emu)
    assert first.startswith("Find the city in: I flew to Lisbon.")
    assert second.startswith("Write about Lisbon. ")  # the rendered field of step 1's JSON
    # Without include_intermediate: the last output only.
    assert "steps" not in run(gw).json()


def test_each_step_is_recorded_under_the_run_request_id(gw: GatewayServer) -> None:
    create_chain(gw)
    resp = run(gw)
    request_id = resp.headers["x-gateway-request-id"]
    rows = wait_rows(gw, [f"{request_id}.0", f"{request_id}.1"])
    assert sorted(rows) == [f"{request_id}.0", f"{request_id}.1"]
    assert [rows[f"{request_id}.{i}"]["prompt_id"] for i in (0, 1)] == ["extract", "write"]
    assert all(row["status"] == 200 for row in rows.values())


def test_streamed_steps_then_deltas_then_one_result(gw: GatewayServer, emu: EmulatorServer) -> None:
    create_chain(gw)
    with httpx.stream(
        "POST",
        f"{gw.url}/v1/chains/trip/run",
        json={"variables": inputs(), "stream": True, "include_intermediate": True},
        headers=ADMIN,
        timeout=30,
    ) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    decoded = [orjson.loads(e) for e in events[:-1]]
    assert decoded[0] == {
        **decoded[0],
        "type": "step",
        "name": "extract",
        "output": {"city": "Lisbon"},
    }
    deltas = [e["text"] for e in decoded if e["type"] == "delta"]
    assert "".join(deltas) == "A postcard from Lisbon."
    assert decoded[-1]["type"] == "result"
    assert decoded[-1]["output"] == "A postcard from Lisbon."
    assert [s["name"] for s in decoded[-1]["steps"]] == ["extract", "write"]
    assert user_messages(emu)[1].startswith("Write about Lisbon. ")


def test_a_step_whose_json_fails_its_schema_stops_the_run(gw: GatewayServer) -> None:
    create_chain(gw)
    bad = {"text": "x " + scripted('{"town": "Lisbon"}'), "reply": "r"}
    resp = api(gw, "POST", "/v1/chains/trip/run", json={"variables": bad})
    assert resp.status_code == 502
    error = resp.json()["error"]
    assert error["code"] == "chain_step_output_invalid"
    assert "step 'extract' (1 of 2)" in error["message"]
    assert "'city' is a required property" in error["message"]


def test_unknown_chain_version_and_label_are_404(gw: GatewayServer) -> None:
    create_chain(gw)
    cases = [
        ("/v1/chains/nope/run", {}, "chain_not_found"),
        ("/v1/chains/trip/run", {"version": 9}, "chain_version_not_found"),
        ("/v1/chains/trip/run", {"label": "staging"}, "chain_label_not_found"),
    ]
    for path, body, code in cases:
        resp = api(gw, "POST", path, json={"variables": inputs(), **body})
        assert resp.status_code == 404, resp.text
        assert resp.json()["error"]["code"] == code
    assert api(gw, "GET", "/v1/chains/nope").status_code == 404


def test_moving_a_label_changes_the_version_run(gw: GatewayServer, emu: EmulatorServer) -> None:
    create_chain(gw, labels=["production"])
    second = [STEPS[0], {**STEPS[1], "variables": {**STEPS[1]["variables"], "city": "Porto"}}]
    added = api(gw, "POST", "/v1/chains/trip/versions", json={"steps": second})
    assert (added.status_code, added.json()["version"]) == (201, 2)
    assert run(gw).json()["version"] == 1  # production still points at 1
    moved = api(gw, "PUT", "/v1/chains/trip/labels/production", json={"version": 2})
    assert moved.json()["labels"] == {"production": 2}
    assert run(gw).json()["version"] == 2
    assert user_messages(emu)[-1].startswith("Write about Porto. ")
    listed = api(gw, "GET", "/v1/chains").json()["data"]
    assert [(c["id"], c["latest_version"]) for c in listed] == [("trip", 2)]


def test_definitions_are_checked_when_stored(gw: GatewayServer) -> None:
    later = [{**STEPS[0], "variables": {"text": "{{ steps.write }}"}}, STEPS[1]]
    resp = api(gw, "POST", "/v1/chains", json={"id": "bad", "steps": later})
    assert resp.status_code == 400
    assert "a later step" in resp.json()["error"]["message"]
    twice = api(gw, "POST", "/v1/chains", json={"id": "bad", "steps": [STEPS[0], STEPS[0]]})
    assert "unique" in twice.json()["error"]["message"]
    plain = httpx.post(f"{gw.url}/v1/chains", json={"id": "x", "steps": STEPS})
    assert plain.status_code == 401


def test_more_steps_than_the_bound_are_refused(
    emu: EmulatorServer, start_gateway: GatewayFactory
) -> None:
    gw = start_gateway(emulator_yaml(emu, "chains: {max_steps: 2}"), master_key=MASTER)
    three = [*STEPS, {**STEPS[1], "name": "again"}]
    resp = api(gw, "POST", "/v1/chains", json={"id": "long", "steps": three})
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == "chain_too_many_steps"
    assert "at most 2 (chains.max_steps)" in error["message"]


def test_a_time_bound_under_a_second_is_refused_before_anything_runs(
    gw: GatewayServer, emu: EmulatorServer
) -> None:
    # Found by fuzzing: `timeout_s: 5e-324` ran the chain into a 504 that blamed the upstream.
    create_chain(gw)
    emu.reset()
    resp = run(gw, timeout_s=0.5)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == "timeout_s"
    assert user_messages(emu) == []


def test_a_run_past_its_time_bound_stops_and_what_ran_is_recorded(
    emu: EmulatorServer, start_gateway: GatewayFactory
) -> None:
    yaml = emulator_yaml(emu, SLOW_MODEL.format(url=emu.url) + "chains: {timeout_s: 30}")
    gw = start_gateway(yaml, master_key=MASTER)
    setup_templates(gw)
    create_chain(gw, steps=[STEPS[0], {**STEPS[1], "model": "slow"}])
    emu.add_faults({"kind": "delay", "seconds": 3, "model": "gpt-4o"})
    started = time.monotonic()
    resp = run(gw, timeout_s=1)
    assert time.monotonic() - started < 2.5
    assert resp.status_code == 504
    error = resp.json()["error"]
    assert error["code"] == "chain_timeout"
    assert "time bound of 1 s" in error["message"]
    assert "step 'write' (2 of 2)" in error["message"]
    request_id = resp.headers["x-gateway-request-id"]
    rows = wait_rows(gw, [f"{request_id}.0", f"{request_id}.1"])
    assert rows[f"{request_id}.0"]["status"] == 200
    assert rows[f"{request_id}.0"]["completion_tokens"] > 0
    stopped = rows[f"{request_id}.1"]
    assert stopped["model"] == "slow"
    assert (stopped["status"], stopped["error_code"]) == (504, "chain_timeout")  # not a 499


def test_a_streamed_run_past_its_time_bound_ends_with_an_error_event(
    emu: EmulatorServer, start_gateway: GatewayFactory
) -> None:
    yaml = emulator_yaml(emu, SLOW_MODEL.format(url=emu.url) + "chains: {timeout_s: 30}")
    gw = start_gateway(yaml, master_key=MASTER)
    setup_templates(gw)
    create_chain(gw, steps=[STEPS[0], {**STEPS[1], "model": "slow"}])
    emu.add_faults({"kind": "delay", "seconds": 3, "model": "gpt-4o"})
    body = {"variables": inputs(), "stream": True, "include_intermediate": True, "timeout_s": 1}
    with httpx.stream(
        "POST", f"{gw.url}/ai/chains/trip/run", json=body, headers=ADMIN, timeout=30
    ) as resp:
        assert resp.status_code == 200
        request_id = resp.headers["x-gateway-request-id"]
        events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    first, last = orjson.loads(events[0]), orjson.loads(events[-1])
    assert first["type"] == "step"  # the first step's output, sent before the bound
    assert last["error"]["code"] == "chain_timeout"
    assert "[DONE]" not in events
    rows = wait_rows(gw, [f"{request_id}.0", f"{request_id}.1"])
    assert (rows[f"{request_id}.1"]["status"], rows[f"{request_id}.1"]["error_code"]) == (
        504,
        "chain_timeout",
    )
