"""CORS: nothing is allowed unless the configuration names it; a preflight from an allowed
origin is answered before authentication, one from another origin is refused."""

from __future__ import annotations

import httpx
import pytest

from conftest import GatewayFactory, emulator_yaml
from harness import EmulatorServer

pytestmark = pytest.mark.integration

MASTER = "sk-master-cors-2b7f"
ALLOWED = "https://app.devmentor.test"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


def test_no_cross_origin_access_by_default(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    gw = start_gateway(emulator_yaml(emu), master_key=MASTER)
    pre = httpx.options(f"{gw.url}/v1/chat/completions", headers={"Origin": ALLOWED, **PREFLIGHT})
    assert "access-control-allow-origin" not in pre.headers
    got = httpx.get(
        f"{gw.url}/v1/models", headers={"Origin": ALLOWED, "Authorization": f"Bearer {MASTER}"}
    )
    assert got.status_code == 200
    assert "access-control-allow-origin" not in got.headers


def test_configured_origins_methods_and_headers(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    config = emulator_yaml(
        emu,
        f"""
security:
  cors:
    allow_origins: ["{ALLOWED}"]
    allow_methods: [GET, POST]
    allow_headers: [authorization, content-type]
""",
    )
    gw = start_gateway(config, master_key=MASTER)
    pre = httpx.options(f"{gw.url}/v1/chat/completions", headers={"Origin": ALLOWED, **PREFLIGHT})
    assert pre.status_code == 200  # answered without credentials
    assert pre.headers["access-control-allow-origin"] == ALLOWED
    assert "POST" in pre.headers["access-control-allow-methods"]
    assert "authorization" in pre.headers["access-control-allow-headers"].lower()

    other = httpx.options(
        f"{gw.url}/v1/chat/completions",
        headers={"Origin": "https://evil.test", **PREFLIGHT},
    )
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers
    bad_method = httpx.options(
        f"{gw.url}/v1/chat/completions",
        headers={"Origin": ALLOWED, "Access-Control-Request-Method": "PUT"},
    )
    assert bad_method.status_code == 400

    body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}
    actual = httpx.post(
        f"{gw.url}/v1/chat/completions",
        json=body,
        headers={"Origin": ALLOWED, "Authorization": f"Bearer {MASTER}"},
    )
    assert actual.status_code == 200
    assert actual.headers["access-control-allow-origin"] == ALLOWED
    assert "x-request-id" in actual.headers["access-control-expose-headers"].lower()
    # CORS is not authentication: a request without the key is still refused.
    anonymous = httpx.post(f"{gw.url}/v1/chat/completions", json=body, headers={"Origin": ALLOWED})
    assert anonymous.status_code == 401
    assert anonymous.headers["access-control-allow-origin"] == ALLOWED  # readable by the page


@pytest.mark.parametrize(("origins", "credentials"), [("['null']", "true"), ("[' NULL ']", "true")])
def test_the_null_origin_with_credentials_is_refused_at_load(
    start_gateway: GatewayFactory, emu: EmulatorServer, origins: str, credentials: str
) -> None:
    from ai_gateway.settings import ConfigError

    extra = f"security:\n  cors: {{allow_origins: {origins}, allow_credentials: {credentials}}}\n"
    with pytest.raises(ConfigError, match=r"security\.cors.*allow_credentials.*origin 'null'"):
        start_gateway(emulator_yaml(emu, extra))


def test_the_null_origin_without_credentials_is_allowed(
    start_gateway: GatewayFactory, emu: EmulatorServer
) -> None:
    extra = "security:\n  cors: {allow_origins: ['null']}\n"
    gw = start_gateway(emulator_yaml(emu, extra))
    pre = httpx.options(f"{gw.url}/v1/chat/completions", headers={"Origin": "null", **PREFLIGHT})
    assert pre.headers["access-control-allow-origin"] == "null"
    assert "access-control-allow-credentials" not in pre.headers
