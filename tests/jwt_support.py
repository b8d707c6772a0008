"""Shared by the JWT tests (unit/test_jwt_auth.py, unit/test_jwt_keyset.py): RSA keys, hand-moved
clocks, a fake JWKS fetcher, token builders and a verifier wired to them.

The fixtures carry their `name=`: a test module imports them as `from jwt_support import
clocks_fixture as clocks_fixture` (the `x as x` tells the linter the import is wanted), and its
tests ask for `clocks`. Module-scoped keys are made once per test module that imports them."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from ai_gateway.security.jwt_auth import InvalidTokenError, JWTVerifier
from ai_gateway.security.jwt_config import JWTSettings

SECRET = "test-shared-secret-0123456789-abcdefghij"
JWKS_URL = "https://auth.example/.well-known/jwks.json"
T0 = 1_700_000_000.0


@pytest.fixture(name="rsa_key", scope="module")
def rsa_key_fixture() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(name="other_rsa_key", scope="module")
def other_rsa_key_fixture() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def rsa_jwk(key: rsa.RSAPrivateKey, kid: str, **extra: str) -> dict[str, Any]:
    jwk: dict[str, Any] = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, **extra}


class Clocks:
    """Wall time for token claims, monotonic time for key set refreshes; both moved by hand."""

    def __init__(self) -> None:
        self.wall = T0
        self.mono = 1000.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


@pytest.fixture(name="clocks")
def clocks_fixture() -> Clocks:
    return Clocks()


class FakeJWKS:
    """An injected fetcher serving `keys`; counts calls, can fail or hold until released."""

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        self.keys = keys
        self.calls = 0
        self.fail = False
        self.gate: asyncio.Event | None = None

    async def __call__(self, url: str) -> bytes:
        assert url == JWKS_URL
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise OSError("connection refused")
        return orjson.dumps({"keys": self.keys})


def claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "user-1", "iat": int(T0), "exp": int(T0) + 600, **extra}


def hs256(payload: dict[str, Any], secret: str = SECRET, **headers: Any) -> str:
    return jwt.encode(payload, secret, algorithm="HS256", headers=headers or None)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade(
    header: dict[str, Any], payload: dict[str, Any], sign: Callable[[bytes], bytes]
) -> str:
    signing_input = f"{b64(orjson.dumps(header))}.{b64(orjson.dumps(payload))}"
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"


def make_verifier(clocks: Clocks, fetcher: FakeJWKS | None = None, **settings: Any) -> JWTVerifier:
    return JWTVerifier(
        JWTSettings(**settings),
        fetch_jwks=fetcher,
        clock=lambda: clocks.wall,
        monotonic=lambda: clocks.mono,
    )


async def rejected(verifier: JWTVerifier, token: str) -> str:
    with pytest.raises(InvalidTokenError) as info:
        await verifier.verify(token)
    return info.value.reason
