"""The service emulators as a user runs them: `ai-gateway emulate --services` in its own process,
their contracts' errors, and the fault controls."""

from __future__ import annotations

import httpx
import pytest

from harness import VENV_BIN, free_port, start_process, wait_http

pytestmark = pytest.mark.integration

AI_GATEWAY = str(VENV_BIN / "ai-gateway")


def test_emulate_services_serves_the_three_services() -> None:
    ports = {name: free_port() for name in ("memory", "project", "learning")}
    args = [AI_GATEWAY, "emulate", "--services", "--service-token", "svc-t"]
    args += [f"--{name}-port={port}" for name, port in ports.items()]
    with start_process(args) as proc:
        base = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        for url in base.values():
            wait_http(f"{url}/health", proc=proc)
        auth = {"Authorization": "Bearer svc-t"}
        with httpx.Client(timeout=10, headers=auth) as http:
            profile = http.get(f"{base['learning']}/v1/learners/u-bob/profile")
            assert profile.json()["level"] == "advanced"
            context = http.post(
                f"{base['project']}/v1/projects/p-todo/context",
                json={"user_id": "u-carol", "query": "store reducer", "limit": 3},
            )
            assert [s["path"] for s in context.json()["snippets"]] == ["src/store.ts"]
            search = http.post(
                f"{base['memory']}/v1/memories/search",
                json={"user_id": "u-bob", "query": "rust", "limit": 3},
            )
            assert [m["id"] for m in search.json()["memories"]] == ["m-b2"]
            # Contract errors: a bad body, an unknown learner, no token.
            bad = http.post(f"{base['memory']}/v1/memories/search", json={"user_id": "u-bob"})
            assert bad.status_code == 422
            missing = http.get(f"{base['learning']}/v1/learners/u-nobody/profile")
            assert missing.status_code == 404
        assert httpx.get(f"{base['learning']}/v1/learners/u-bob/profile").status_code == 401


def test_faults_are_set_changed_and_cleared_over_http() -> None:
    port = free_port()
    args = [AI_GATEWAY, "emulate", "--services", "--learning-port", str(port)]
    args += ["--memory-port", str(free_port()), "--project-port", str(free_port())]
    with start_process(args) as proc, httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
        wait_http(f"http://127.0.0.1:{port}/health", proc=proc)
        profile = "/v1/learners/u-alice/profile"
        assert http.put("/_emulator/faults", json={"status": 502}).json()["status"] == 502
        assert http.get(profile).status_code == 502
        faults = http.put("/_emulator/faults", json={"latency_s": 0.01}).json()
        assert faults == {"latency_s": 0.01, "status": 502, "down": False, "malformed": None}
        for bad in ({"status": 99}, {"kind": "drop"}, {"down": "yes"}, {"malformed": "xml"}):
            assert http.put("/_emulator/faults", json=bad).status_code == 400
        http.put("/_emulator/faults", json={"down": True})
        with pytest.raises(httpx.TransportError):
            http.get(profile)
        http.delete("/_emulator/faults")
        assert http.get(profile).status_code == 200
        log = http.get("/_emulator/requests").json()["requests"]
        assert [entry["path"] for entry in log if entry["path"] != "/health"] == [profile] * 3
