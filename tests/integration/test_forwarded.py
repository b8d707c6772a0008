"""`ai-gateway serve` and FORWARDED_ALLOW_IPS (docs/deployment.md): the client address in the
audit log comes from X-Forwarded-For only when the connection comes from a trusted proxy. The
trusted case, through a real nginx, is in test_cluster.py."""

from __future__ import annotations

import sys
import time

import httpx
import pytest

from harness import free_port, start_process, wait_http

pytestmark = pytest.mark.integration

MASTER = "sk-master-forwarded-19c2"


def _audited_addresses(url: str) -> list[str | None]:
    deadline = time.monotonic() + 10
    while True:
        resp = httpx.get(
            f"{url}/admin/audit",
            params={"action": "auth.failed"},
            headers={"Authorization": f"Bearer {MASTER}"},
        )
        assert resp.status_code == 200, resp.text
        found = [record["source_ip"] for record in resp.json()["data"]]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_serve_ignores_x_forwarded_for_from_a_peer_it_does_not_trust() -> None:
    # 127.0.0.1 (this test) is trusted by default; here only 10.9.8.7 is. The trusted case,
    # nginx's header taken, is test_cluster.py's.
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "AI_GATEWAY_MASTER_KEY": MASTER,
        "AI_GATEWAY_DEMO": "true",
        "FORWARDED_ALLOW_IPS": "10.9.8.7",
    }
    argv = [sys.executable, "-m", "ai_gateway", "serve", "--port", str(port)]
    with start_process(argv, env=env) as proc:
        wait_http(f"{url}/health", proc=proc)
        refused = httpx.get(
            f"{url}/v1/models",
            headers={"Authorization": "Bearer sk-wrong", "X-Forwarded-For": "198.51.100.9"},
        )
        assert refused.status_code == 401
        assert _audited_addresses(url) == ["127.0.0.1"]
