"""The JWKS key set behind `JWTVerifier` (`ai_gateway.security.jwks.KeySet`): which key a token
gets, fetching, caching, refetch throttling, shared fetches, stale keys, and the default fetcher.
The verifier's other checks are in test_jwt_auth.py."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm

from ai_gateway.security.jwt_auth import (
    InvalidTokenError,
    JWTVerifier,
    KeySetUnavailableError,
)
from ai_gateway.security.jwt_config import JWTSettings
from jwt_support import (
    JWKS_URL,
    SECRET,
    T0,
    Clocks,
    FakeJWKS,
    claims,
    handmade,
    make_verifier,
    rejected,
    rsa_jwk,
)

# Fixtures, which pytest finds here by their `name=`; `x as x` says they are imported on purpose.
from jwt_support import clocks_fixture as clocks_fixture
from jwt_support import other_rsa_key_fixture as other_rsa_key_fixture
from jwt_support import rsa_key_fixture as rsa_key_fixture


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def ec_jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid}


# --- which key a token gets ------------------------------------------------------------------


async def test_a_valid_es256_token_is_verified_with_its_jwks_key(
    clocks: Clocks, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    fetcher = FakeJWKS([ec_jwk(ec_key, "ec-1")])
    verifier = make_verifier(clocks, fetcher, jwks_url=JWKS_URL)
    token = jwt.encode(claims(), ec_key, algorithm="ES256", headers={"kid": "ec-1"})
    assert (await verifier.verify(token)).user == "user-1"
    assert fetcher.calls == 1


async def test_ps256_uses_an_rsa_key_of_the_set(clocks: Clocks, rsa_key: rsa.RSAPrivateKey) -> None:
    fetcher = FakeJWKS([rsa_jwk(rsa_key, "r1")])
    verifier = make_verifier(clocks, fetcher, jwks_url=JWKS_URL, algorithms=["PS256"])
    token = jwt.encode(claims(), rsa_key, algorithm="PS256", headers={"kid": "r1"})
    assert (await verifier.verify(token)).user == "user-1"


async def test_a_token_whose_algorithm_does_not_fit_its_key_is_refused(
    clocks: Clocks, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    fetcher = FakeJWKS(
        [rsa_jwk(rsa_key, "r1"), ec_jwk(ec_key, "e1"), rsa_jwk(rsa_key, "r2", alg="RS512")]
    )
    verifier = make_verifier(clocks, fetcher, jwks_url=JWKS_URL, algorithms=["RS256", "ES256"])
    es_on_rsa = jwt.encode(claims(), ec_key, algorithm="ES256", headers={"kid": "r1"})
    rs_on_ec = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "e1"})
    rs256_on_rs512 = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "r2"})
    for token in (es_on_rsa, rs_on_ec, rs256_on_rs512):
        assert await rejected(verifier, token) == "the token's algorithm does not match its key"


async def test_hs256_signed_with_the_rsa_public_key_is_refused(
    clocks: Clocks, rsa_key: rsa.RSAPrivateKey
) -> None:
    """The classic key confusion: the attacker signs HS256 with the public key as the secret."""
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def sign(data: bytes) -> bytes:
        return hmac.new(public_pem, data, hashlib.sha256).digest()

    token = handmade({"alg": "HS256", "typ": "JWT", "kid": "r1"}, claims(), sign)
    fetcher = FakeJWKS([rsa_jwk(rsa_key, "r1")])
    rs_only = make_verifier(clocks, fetcher, jwks_url=JWKS_URL, algorithms=["RS256"])
    assert await rejected(rs_only, token) == "the token's algorithm 'HS256' is not accepted"
    assert fetcher.calls == 0  # refused before any key lookup
    # With HS256 allowed too, HS256 is checked against the shared secret only, never a JWKS key.
    both = make_verifier(clocks, fetcher, secret=SECRET, jwks_url=JWKS_URL)
    assert await rejected(both, token) == "the token's signature is invalid"


# --- the key set -------------------------------------------------------------------------------


async def test_unknown_kids_refetch_at_most_once_per_10_seconds(
    clocks: Clocks, rsa_key: rsa.RSAPrivateKey
) -> None:
    fetcher = FakeJWKS([rsa_jwk(rsa_key, "r1")])
    verifier = make_verifier(clocks, fetcher, jwks_url=JWKS_URL)
    unknown = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "nope"})
    assert await rejected(verifier, unknown) == "the token's key id is unknown"
    assert fetcher.calls == 1  # the set was fetched just now: no point fetching it again
    clocks.advance(10.0)
    for i in range(20):
        token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": f"k{i}"})
        assert await rejected(verifier, token) == "the token's key id is unknown"
    assert fetcher.calls == 2
    # A rotated-in key is picked up by the next refetch once 10 s have passed.
    fetcher.keys.append(rsa_jwk(rsa_key, "r2"))
    rotated = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "r2"})
    clocks.advance(9.0)
    assert await rejected(verifier, rotated) == "the token's key id is unknown"
    clocks.advance(1.0)
    assert (await verifier.verify(rotated)).user == "user-1"
    assert fetcher.calls == 3


async def test_the_key_set_is_refetched_when_its_cache_expires(
    clocks: Clocks, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    fetcher = FakeJWKS([ec_jwk(ec_key, "e1")])
    verifier = make_verifier(clocks, fetcher, jwks_url=JWKS_URL, jwks_cache_s=300, cache_ttl_s=0)
    token = jwt.encode(claims(exp=int(T0) + 3600), ec_key, algorithm="ES256", headers={"kid": "e1"})
    await verifier.verify(token)
    clocks.advance(299.0)
    await verifier.verify(token)
    assert fetcher.calls == 1
    clocks.advance(1.0)
    await verifier.verify(token)
    assert fetcher.calls == 2


async def test_concurrent_verifications_share_one_fetch(
    clocks: Clocks, rsa_key: rsa.RSAPrivateKey
) -> None:
    fetcher = FakeJWKS([rsa_jwk(rsa_key, "r1")])
    fetcher.gate = asyncio.Event()
    verifier = make_verifier(clocks, fetcher, jwks_url=JWKS_URL, cache_ttl_s=0)
    tokens = [
        jwt.encode(claims(sub=f"u{i}"), rsa_key, algorithm="RS256", headers={"kid": "r1"})
        for i in range(10)
    ]
    tasks = [asyncio.create_task(verifier.verify(t)) for t in tokens]
    for _ in range(5):
        await asyncio.sleep(0)
    assert fetcher.calls == 1
    fetcher.gate.set()
    identities = await asyncio.gather(*tasks)
    assert [i.user for i in identities] == [f"u{i}" for i in range(10)]
    assert fetcher.calls == 1


async def test_a_key_set_that_cannot_be_fetched_is_a_distinct_error(
    clocks: Clocks, rsa_key: rsa.RSAPrivateKey
) -> None:
    fetcher = FakeJWKS([rsa_jwk(rsa_key, "r1")])
    fetcher.fail = True
    verifier = make_verifier(clocks, fetcher, jwks_url=JWKS_URL)
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "r1"})
    with pytest.raises(KeySetUnavailableError) as info:
        await verifier.verify(token)
    assert info.value.reason == "cannot verify the token: the key set is unavailable"
    assert isinstance(info.value, InvalidTokenError)
    with pytest.raises(KeySetUnavailableError):
        await verifier.verify(token)
    assert fetcher.calls == 1  # no retry within a second
    fetcher.fail = False
    clocks.advance(1.0)
    assert (await verifier.verify(token)).user == "user-1"
    assert fetcher.calls == 2


async def test_stale_keys_are_used_while_the_auth_service_is_down(
    clocks: Clocks, rsa_key: rsa.RSAPrivateKey
) -> None:
    fetcher = FakeJWKS([rsa_jwk(rsa_key, "r1")])
    verifier = make_verifier(clocks, fetcher, jwks_url=JWKS_URL, jwks_cache_s=300, cache_ttl_s=0)

    def token() -> str:
        payload = claims(iat=int(clocks.wall), exp=int(clocks.wall) + 600)
        return jwt.encode(payload, rsa_key, algorithm="RS256", headers={"kid": "r1"})

    await verifier.verify(token())
    fetcher.fail = True
    clocks.advance(400.0)
    assert (await verifier.verify(token())).user == "user-1"  # refresh failed: stale keys
    assert fetcher.calls == 2
    clocks.advance(3600.0)
    with pytest.raises(KeySetUnavailableError):
        await verifier.verify(token())


@pytest.mark.parametrize(
    "document",
    [b"not json", b"{}", b'{"keys": "x"}', b'{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}'],
)
async def test_a_useless_key_set_document_counts_as_unavailable(
    clocks: Clocks, rsa_key: rsa.RSAPrivateKey, document: bytes
) -> None:
    async def fetch(url: str) -> bytes:
        return document

    verifier = JWTVerifier(
        JWTSettings(jwks_url=JWKS_URL), fetch_jwks=fetch, clock=lambda: clocks.wall
    )
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "r1"})
    with pytest.raises(KeySetUnavailableError):
        await verifier.verify(token)


async def test_kid_may_be_omitted_only_when_the_set_has_one_key(
    clocks: Clocks, rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    fetcher = FakeJWKS([rsa_jwk(rsa_key, "r1"), rsa_jwk(other_rsa_key, "enc", use="enc")])
    verifier = make_verifier(clocks, fetcher, jwks_url=JWKS_URL)
    no_kid = jwt.encode(claims(), rsa_key, algorithm="RS256")
    assert (await verifier.verify(no_kid)).user == "user-1"  # the "enc" key is not a signing key
    fetcher.keys.append(rsa_jwk(other_rsa_key, "r2"))
    clocks.advance(400.0)
    assert await rejected(verifier, jwt.encode(claims(), rsa_key, algorithm="RS256")) == (
        "the token has no key id ('kid')"
    )


# --- the default fetcher, against a real HTTP server -------------------------------------------


@pytest.fixture
async def jwks_server(rsa_key: rsa.RSAPrivateKey) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    state: dict[str, Any] = {"status": 200, "hits": 0, "keys": [rsa_jwk(rsa_key, "r1")]}

    async def jwks(request: web.Request) -> web.Response:
        state["hits"] += 1
        return web.json_response({"keys": state["keys"]}, status=state["status"])

    app = web.Application()
    app.router.add_get("/jwks.json", jwks)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/jwks.json", state
    finally:
        await runner.cleanup()


@pytest.mark.integration
async def test_rs256_with_keys_from_a_real_jwks_endpoint(
    jwks_server: tuple[str, dict[str, Any]], rsa_key: rsa.RSAPrivateKey
) -> None:
    url, state = jwks_server
    verifier = JWTVerifier(JWTSettings(jwks_url=url, issuer="https://auth.example"))
    try:
        now = int(time.time())
        payload = {"sub": "ada", "iss": "https://auth.example", "exp": now + 300}
        token = jwt.encode(payload, rsa_key, algorithm="RS256", headers={"kid": "r1"})
        assert (await verifier.verify(token)).user == "ada"
        assert state["hits"] == 1
        # An HTTP error from the endpoint makes the key set unavailable.
        state["status"] = 500
        fresh = JWTVerifier(JWTSettings(jwks_url=url))
        try:
            with pytest.raises(KeySetUnavailableError):
                await fresh.verify(token)
        finally:
            await fresh.aclose()
    finally:
        await verifier.aclose()
