"""Authentication end to end: the master key, virtual keys through the admin API (create, use
with the official SDK, revoke, rotate, expire, allowed models), Auth-service JWTs, and the
attempts an attacker would make. Each refusal is the right 4xx and nothing else happens: no
upstream call, no usage record, an audit row without the credential."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import openai
import pytest

from conftest import GatewayFactory, emulator_yaml
from harness import EmulatorServer, GatewayServer

pytestmark = pytest.mark.integration

MASTER = "sk-master-3b1f0c9e7d2a4c51"
JWT_SECRET = "jwt-shared-secret-5f0e6c2a9b7d41e3a8c2"
ADMIN = {"Authorization": f"Bearer {MASTER}"}
SECURITY = f"""
security:
  jwt:
    secret: {JWT_SECRET}
    issuer: https://auth.devmentor.test
    audience: ai-gateway
    team_claim: team
"""


@pytest.fixture
def gw(emu: EmulatorServer, start_gateway: GatewayFactory) -> GatewayServer:
    return start_gateway(emulator_yaml(emu, SECURITY), master_key=MASTER)


@pytest.fixture
def admin(gw: GatewayServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw.url, headers=ADMIN, timeout=10) as client:
        yield client


def create_key(admin: httpx.Client, **fields: Any) -> dict[str, Any]:
    resp = admin.post("/admin/keys", json={"user": "alice", **fields})
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


def sdk(gw: GatewayServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)


def ask(gw: GatewayServer, key: str | None, **extra: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    body = {"model": "fast", "messages": [{"role": "user", "content": "hello"}], **extra}
    return httpx.post(f"{gw.url}/v1/chat/completions", json=body, headers=headers, timeout=10)


def token(**claims: Any) -> str:
    now = int(time.time())
    payload = {
        "sub": "bob",
        "team": "core",
        "iss": "https://auth.devmentor.test",
        "aud": "ai-gateway",
        "iat": now,
        "exp": now + 300,
        **claims,
    }
    return jwt.encode(payload, JWT_SECRET, algorithm="HS256")


def error_of(resp: httpx.Response) -> dict[str, Any]:
    body = resp.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def audit(admin: httpx.Client, **params: str) -> list[dict[str, Any]]:
    resp = admin.get("/admin/audit", params={"start": "1h", **params})
    assert resp.status_code == 200, resp.text
    rows: list[dict[str, Any]] = resp.json()["data"]
    return rows


def flush(gw: GatewayServer) -> None:
    """Write what the background writer holds (audit rows are written off the hot path)."""
    resp = httpx.get(f"{gw.url}/ai/analytics/usage", params={"start": "1h"}, headers=ADMIN)
    assert resp.status_code == 200  # the analytics API flushes the writer before it reads


def test_a_virtual_key_works_with_the_official_sdk_and_is_attributed(
    gw: GatewayServer, admin: httpx.Client, emu: EmulatorServer
) -> None:
    created = create_key(admin, team="core", name="ci")
    secret = created["key"]
    assert secret.startswith("sk-gw-")
    assert created["user"] == "alice"
    assert "salt" not in created
    assert "secret_hash" not in created
    with sdk(gw, secret) as client:
        reply = client.chat.completions.create(
            model="fast", messages=[{"role": "user", "content": "hi"}]
        )
    assert reply.choices[0].message.content
    flush(gw)
    by_user = httpx.get(
        f"{gw.url}/ai/analytics/usage",
        params={"start": "1h", "group_by": "user"},
        headers=ADMIN,
    ).json()["data"]
    assert [row["group"] for row in by_user] == ["alice"]
    by_team = httpx.get(
        f"{gw.url}/ai/analytics/usage",
        params={"start": "1h", "group_by": "team"},
        headers=ADMIN,
    ).json()["data"]
    assert [row["group"] for row in by_team] == ["core"]
    # The secret is shown once: listing and showing never repeat it.
    listed = admin.get("/admin/keys").text + admin.get(f"/admin/keys/{created['id']}").text
    assert secret not in listed
    assert created["id"] in listed


def test_revoked_rotated_and_expired_keys_are_refused(
    gw: GatewayServer, admin: httpx.Client
) -> None:
    first = create_key(admin)
    assert ask(gw, first["key"]).status_code == 200
    rotated = admin.post(f"/admin/keys/{first['id']}/rotate")
    assert rotated.status_code == 200
    new_secret = rotated.json()["key"]
    assert new_secret != first["key"]
    old = ask(gw, first["key"])
    assert old.status_code == 401
    assert error_of(old)["code"] == "invalid_api_key"
    assert ask(gw, new_secret).status_code == 200

    assert admin.post(f"/admin/keys/{first['id']}/revoke").status_code == 200
    revoked = ask(gw, new_secret)
    assert revoked.status_code == 401
    assert error_of(revoked)["code"] == "revoked_api_key"
    assert "revoked" in error_of(revoked)["message"]
    assert admin.post(f"/admin/keys/{first['id']}/rotate").status_code == 400

    short = create_key(admin, expires_in_s=1)
    assert ask(gw, short["key"]).status_code == 200
    time.sleep(1.2)
    expired = ask(gw, short["key"])
    assert expired.status_code == 401
    assert error_of(expired)["code"] == "expired_api_key"


def test_a_key_is_limited_to_its_models(gw: GatewayServer, admin: httpx.Client) -> None:
    key = create_key(admin, models=["embed"])["key"]
    resp = ask(gw, key)
    assert resp.status_code == 403
    error = error_of(resp)
    assert error["code"] == "model_not_allowed"
    assert error["param"] == "model"
    emb = httpx.post(
        f"{gw.url}/v1/embeddings",
        json={"model": "embed", "input": "x"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert emb.status_code == 200


def test_auth_service_jwts_are_verified(gw: GatewayServer, emu: EmulatorServer) -> None:
    good = ask(gw, token())
    assert good.status_code == 200, good.text
    cases = {
        "expired": token(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200),
        "wrong issuer": token(iss="https://evil.test"),
        "wrong audience": token(aud="other-service"),
        "wrong signature": jwt.encode(
            {
                "sub": "bob",
                "iss": "https://auth.devmentor.test",
                "aud": "ai-gateway",
                "exp": int(time.time()) + 300,
            },
            "not-the-shared-secret-at-all-0123456789",
            algorithm="HS256",
        ),
        "alg none": _unsigned(
            {
                "sub": "bob",
                "iss": "https://auth.devmentor.test",
                "aud": "ai-gateway",
                "exp": int(time.time()) + 300,
            }
        ),
    }
    before = len(emu.requests())
    for name, bad in cases.items():
        resp = ask(gw, bad)
        assert resp.status_code == 401, name
        error = error_of(resp)
        assert error["type"] == "authentication_error", name
        assert error["code"] == "invalid_token", name
        assert bad not in resp.text
    assert "expired" in error_of(ask(gw, cases["expired"]))["message"]
    assert len(emu.requests()) == before  # nothing reached the provider


def _unsigned(payload: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}."


def test_attacker_attempts_get_the_right_4xx_and_nothing_else_happens(
    gw: GatewayServer, admin: httpx.Client, emu: EmulatorServer
) -> None:
    user_key = create_key(admin)["key"]
    before = len(emu.requests())

    missing = ask(gw, None)
    assert missing.status_code == 401
    assert error_of(missing)["code"] == "missing_api_key"
    assert missing.headers["www-authenticate"].startswith("Bearer")

    wrong_secret = user_key[:-4] + ("AAAA" if not user_key.endswith("AAAA") else "BBBB")
    for bad in ("sk-not-a-gateway-key", wrong_secret, "sk-gw-000000000000_" + "x" * 43):
        resp = ask(gw, bad)
        assert resp.status_code == 401
        assert error_of(resp)["code"] == "invalid_api_key"
        assert bad not in resp.text

    # Another user's key against the admin and analytics routes: authenticated, not allowed.
    user = {"Authorization": f"Bearer {user_key}"}
    for method, path in [
        ("GET", "/admin/keys"),
        ("POST", "/admin/keys"),
        ("GET", "/admin/audit"),
        ("GET", "/ai/analytics/usage"),
    ]:
        resp = httpx.request(method, f"{gw.url}{path}", headers=user, json={"user": "x"})
        assert resp.status_code == 403, path
        assert error_of(resp)["code"] == "admin_only"
    assert len(admin.get("/admin/keys").json()["data"]) == 1  # no key was created

    # Oversized and deeply nested bodies.
    huge = httpx.post(
        f"{gw.url}/v1/chat/completions",
        content=b'{"model": "fast", "messages": [' + b" " * (11 * 1024 * 1024) + b"]}",
        headers={**user, "content-type": "application/json"},
        timeout=30,
    )
    assert huge.status_code == 413
    nested: Any = "x"
    for _ in range(200):
        nested = {"a": nested}
    deep = ask(gw, user_key, metadata=nested)
    assert deep.status_code == 400
    assert error_of(deep)["code"] == "json_too_deep"

    # Header injection: CR/LF in a header value never reaches a handler.
    raw = _raw_request(
        gw,
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer " + user_key.encode() + b"\r\nX-Injected: a\rSet-Cookie: b\r\n"
        b"Content-Length: 2\r\n\r\n{}",
    )
    assert raw.startswith(b"HTTP/1.1 400")
    assert b"Set-Cookie" not in raw

    assert len(emu.requests()) == before  # none of it reached the provider

    flush(gw)
    failures = audit(admin, action="auth.failed")
    assert len(failures) >= 4
    assert {row["actor"] for row in failures} == {"anonymous"}
    denied = audit(admin, action="access.denied")
    assert len(denied) == 4
    everything = json.dumps(audit(admin, limit="1000"))
    assert user_key not in everything
    assert wrong_secret not in everything
    assert MASTER not in everything


def _raw_request(gw: GatewayServer, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def test_admin_actions_are_audited_with_who_and_from_where(
    gw: GatewayServer, admin: httpx.Client
) -> None:
    key = create_key(admin, name="audited")
    admin.post(f"/admin/keys/{key['id']}/rotate")
    admin.delete(f"/admin/keys/{key['id']}")
    flush(gw)
    rows = audit(admin, target=key["id"])
    assert [row["action"] for row in rows] == ["key.revoked", "key.rotated", "key.created"]
    for row in rows:
        assert row["actor"] == "master"
        assert row["source_ip"] == "127.0.0.1"
        assert row["request_id"]
        assert row["outcome"] == "success"
    assert key["key"] not in json.dumps(rows)


def test_admin_api_validates_its_input(gw: GatewayServer, admin: httpx.Client) -> None:
    cases = [
        ({}, "user"),
        ({"user": "a", "budget_usd": "5"}, None),
        ({"user": "a", "guardrails": ["nope"]}, "guardrails"),
        ({"user": "a", "rps": -1}, "rps"),
        ({"user": "a", "surprise": 1}, "surprise"),
    ]
    for body, param in cases:
        resp = admin.post("/admin/keys", json=body)
        assert resp.status_code == 400, body
        if param is not None:
            assert error_of(resp)["param"] == param, body
    assert admin.get("/admin/keys/0123456789ab").status_code == 404
    assert admin.get("/admin/keys/not-an-id").status_code == 404
    assert admin.get("/admin/keys").json()["data"] == []
