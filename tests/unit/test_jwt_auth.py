"""`JWTSettings` and `JWTVerifier`: settings, token checks, the verification cache, what the client
is told. The JWKS key set (key choice, fetching, caching) is tested in test_jwt_keyset.py."""

from __future__ import annotations

import re
from typing import Any

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from ai_gateway.security.jwt_auth import InvalidTokenError, JWTIdentity, looks_like_jwt
from ai_gateway.security.jwt_config import JWTSettings
from jwt_support import (
    JWKS_URL,
    SECRET,
    T0,
    Clocks,
    FakeJWKS,
    b64,
    claims,
    handmade,
    hs256,
    make_verifier,
    rejected,
    rsa_jwk,
)

# Fixtures, which pytest finds here by their `name=`; `x as x` says they are imported on purpose.
from jwt_support import clocks_fixture as clocks_fixture
from jwt_support import other_rsa_key_fixture as other_rsa_key_fixture
from jwt_support import rsa_key_fixture as rsa_key_fixture

OTHER_SECRET = "another-shared-secret-0123456789-abcdefg"


# --- settings ----------------------------------------------------------------------------------


def test_default_algorithms_follow_the_keys_given() -> None:
    assert JWTSettings(secret=SECRET).algorithms == ("HS256",)
    assert JWTSettings(jwks_url=JWKS_URL).algorithms == ("RS256", "ES256")
    both = JWTSettings(secret=SECRET, jwks_url=JWKS_URL)
    assert both.algorithms == ("HS256", "RS256", "ES256")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "set secret (for HS256) or jwks_url"),
        ({"secret": SECRET, "algorithms": ["none"]}, "'none' (unsigned tokens) is never accepted"),
        ({"secret": SECRET, "algorithms": ["HS256", "NONE"]}, "never accepted"),
        ({"secret": SECRET, "algorithms": ["EdDSA"]}, "unsupported algorithm 'EdDSA'"),
        ({"secret": SECRET, "algorithms": []}, "at least one algorithm"),
        ({"jwks_url": JWKS_URL, "algorithms": ["HS256"]}, "HS256 need a secret"),
        ({"secret": SECRET, "algorithms": ["RS256"]}, "RS256 need a jwks_url"),
        ({"secret": SECRET, "jwks_url": JWKS_URL, "algorithms": ["RS256"]}, "no HS* algorithm"),
        ({"jwks_url": "ftp://auth.example/jwks"}, "http:// or https://"),
        ({"secret": "x" * 40, "algorithms": ["HS512"]}, "40 bytes long; HS512 needs at least 64"),
        ({"secret": SECRET, "bogus": 1}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_settings_are_refused_with_a_clear_message(
    settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        JWTSettings(**settings)


def test_a_settings_error_never_shows_the_secret() -> None:
    short = "my-too-short-secret"
    with pytest.raises(ValidationError) as info:
        JWTSettings(secret=short)
    assert "19 bytes long; HS256 needs at least 32" in str(info.value)
    assert short not in str(info.value)
    assert short not in repr(JWTSettings(secret=SECRET + short))


# --- valid tokens ------------------------------------------------------------------------------


async def test_a_valid_hs256_token_gives_its_identity(clocks: Clocks) -> None:
    verifier = make_verifier(clocks, secret=SECRET)
    identity = await verifier.verify(hs256(claims()))
    assert identity == JWTIdentity(
        user="user-1", team=None, subject="user-1", expires_at=int(T0) + 600
    )


async def test_custom_user_and_team_claims(clocks: Clocks) -> None:
    verifier = make_verifier(clocks, secret=SECRET, user_claim="email", team_claim="org")
    token = hs256(claims(email="ada@example.com", org="research"))
    identity = await verifier.verify(token)
    assert (identity.user, identity.team, identity.subject) == (
        "ada@example.com",
        "research",
        "user-1",
    )
    no_team = await verifier.verify(hs256(claims(email="bob@example.com")))
    assert no_team.team is None
    numeric = await verifier.verify(hs256(claims(email=42, org=7)))
    assert (numeric.user, numeric.team) == ("42", "7")
    reason = await rejected(verifier, hs256(claims(email="x@example.com", org=["a", "b"])))
    assert reason == "the token's 'org' claim is not a string"


async def test_a_token_without_the_user_claim_is_refused(clocks: Clocks) -> None:
    verifier = make_verifier(clocks, secret=SECRET)
    payload = claims()
    del payload["sub"]
    assert await rejected(verifier, hs256(payload)) == "the token has no 'sub' claim"
    custom = make_verifier(clocks, secret=SECRET, user_claim="email")
    assert await rejected(custom, hs256(claims())) == "the token has no 'email' claim"


async def test_exp_is_required_unless_configured_otherwise(clocks: Clocks) -> None:
    payload = claims()
    del payload["exp"]
    token = hs256(payload)
    assert await rejected(make_verifier(clocks, secret=SECRET), token) == (
        "the token has no 'exp' claim"
    )
    lenient = make_verifier(clocks, secret=SECRET, require_exp=False)
    assert (await lenient.verify(token)).expires_at is None


# --- time claims -------------------------------------------------------------------------------


async def test_expiry_allows_the_leeway_and_no_more(clocks: Clocks) -> None:
    verifier = make_verifier(clocks, secret=SECRET, leeway_s=30, cache_ttl_s=0)
    token = hs256(claims(exp=int(T0) + 10))
    clocks.advance(39.0)  # 29 s past exp: inside the leeway
    assert (await verifier.verify(token)).user == "user-1"
    clocks.advance(1.0)  # exactly exp + leeway
    assert await rejected(verifier, token) == "the token has expired"


async def test_a_token_not_yet_valid_is_refused(clocks: Clocks) -> None:
    verifier = make_verifier(clocks, secret=SECRET, leeway_s=30)
    assert await rejected(verifier, hs256(claims(nbf=int(T0) + 31))) == (
        "the token is not yet valid"
    )
    assert await rejected(verifier, hs256(claims(iat=int(T0) + 120))) == (
        "the token is not yet valid"
    )
    assert (await verifier.verify(hs256(claims(nbf=int(T0) + 30)))).user == "user-1"


@pytest.mark.parametrize("exp", ["tomorrow", True, 10**400, [1]])
async def test_a_non_numeric_exp_is_refused(clocks: Clocks, exp: Any) -> None:
    verifier = make_verifier(clocks, secret=SECRET)
    assert await rejected(verifier, hs256(claims(exp=exp))) == (
        "the token's 'exp' claim is not a number"
    )


# --- issuer, audience, signature ---------------------------------------------------------------


async def test_issuer_and_audience_must_match(clocks: Clocks) -> None:
    verifier = make_verifier(
        clocks, secret=SECRET, issuer="https://auth.example", audience="ai-gateway"
    )
    good = claims(iss="https://auth.example", aud="ai-gateway")
    assert (await verifier.verify(hs256(good))).user == "user-1"
    assert await rejected(verifier, hs256({**good, "iss": "https://evil.example"})) == (
        "the token's issuer is not accepted"
    )
    assert await rejected(verifier, hs256({**good, "aud": "billing"})) == (
        "the token's audience is not accepted"
    )
    no_iss = {k: v for k, v in good.items() if k != "iss"}
    assert await rejected(verifier, hs256(no_iss)) == "the token has no 'iss' claim"
    no_aud = {k: v for k, v in good.items() if k != "aud"}
    assert await rejected(verifier, hs256(no_aud)) == "the token has no 'aud' claim"


async def test_a_token_for_an_audience_is_refused_when_none_is_configured(
    clocks: Clocks,
) -> None:
    verifier = make_verifier(clocks, secret=SECRET)
    assert await rejected(verifier, hs256(claims(aud="billing"))) == (
        "the token's audience is not accepted"
    )


async def test_a_wrong_signature_is_refused(
    clocks: Clocks, rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    verifier = make_verifier(clocks, secret=SECRET)
    assert await rejected(verifier, hs256(claims(), OTHER_SECRET)) == (
        "the token's signature is invalid"
    )
    fetcher = FakeJWKS([rsa_jwk(rsa_key, "r1")])
    rs = make_verifier(clocks, fetcher, jwks_url=JWKS_URL)
    forged = jwt.encode(claims(), other_rsa_key, algorithm="RS256", headers={"kid": "r1"})
    assert await rejected(rs, forged) == "the token's signature is invalid"


async def test_a_tampered_payload_is_refused(clocks: Clocks) -> None:
    verifier = make_verifier(clocks, secret=SECRET)
    header, _, signature = hs256(claims()).split(".")
    tampered = f"{header}.{b64(orjson.dumps(claims(sub='admin')))}.{signature}"
    assert await rejected(verifier, tampered) == "the token's signature is invalid"


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
async def test_an_unsigned_token_is_refused(clocks: Clocks, alg: str) -> None:
    fetcher = FakeJWKS([])
    verifier = make_verifier(clocks, fetcher, secret=SECRET, jwks_url=JWKS_URL)
    token = handmade({"alg": alg, "typ": "JWT"}, claims(), lambda _: b"")
    assert token.endswith(".")
    assert await rejected(verifier, token) == f"the token's algorithm '{alg}' is not accepted"
    assert fetcher.calls == 0


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.!!!.sig", "eyJub3Rqc29u.e30.", "x" * 20_000],
)
async def test_malformed_tokens_are_refused(clocks: Clocks, token: str) -> None:
    verifier = make_verifier(clocks, secret=SECRET)
    assert await rejected(verifier, token) == "the token is malformed"


@pytest.mark.parametrize("kid", [None, 7, ["k"]])
async def test_a_kid_that_is_not_a_string_is_malformed(clocks: Clocks, kid: Any) -> None:
    verifier = make_verifier(clocks, secret=SECRET)
    token = handmade({"alg": "HS256", "kid": kid}, claims(), lambda _: b"sig")
    assert await rejected(verifier, token) == "the token is malformed"


# --- the verification cache --------------------------------------------------------------------


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens `jwt.decode` is called with: what the verification cache did not answer."""
    seen: list[str] = []
    real_decode = jwt.decode

    def counting_decode(token: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(token)
        return real_decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting_decode)
    return seen


async def test_a_verified_token_is_cached_until_its_expiry_at_most(
    clocks: Clocks, decodes: list[str]
) -> None:
    verifier = make_verifier(clocks, secret=SECRET, leeway_s=0, cache_ttl_s=60)
    token = hs256(claims(exp=int(T0) + 100))
    for _ in range(5):
        await verifier.verify(token)
    assert len(decodes) == 1
    clocks.advance(60.0)  # the cache entry's 60 s are over: verified again
    await verifier.verify(token)
    assert len(decodes) == 2
    clocks.advance(40.0)  # at exp: the cached entry must not outlive the token
    assert await rejected(verifier, token) == "the token has expired"


async def test_the_verification_cache_is_bounded(clocks: Clocks, decodes: list[str]) -> None:
    verifier = make_verifier(clocks, secret=SECRET, cache_max_entries=2)
    a, b, c = (hs256(claims(sub=name)) for name in "abc")
    for token in (a, b, a, c):  # c evicts b, the least recently used
        await verifier.verify(token)
    assert len(decodes) == 3
    await verifier.verify(a)
    assert len(decodes) == 3
    await verifier.verify(b)
    assert len(decodes) == 4


# --- what the client is told -------------------------------------------------------------------


async def test_reasons_never_contain_the_token_or_the_secret(
    clocks: Clocks, rsa_key: rsa.RSAPrivateKey
) -> None:
    verifier = make_verifier(clocks, secret=SECRET, issuer="iss-a", audience="aud-a")
    good = claims(iss="iss-a", aud="aud-a")
    tokens = [
        hs256(good, OTHER_SECRET),
        hs256({**good, "iss": "iss-b"}),
        hs256({**good, "aud": "aud-b"}),
        hs256({**good, "exp": int(T0) - 3600}),
        hs256({k: v for k, v in good.items() if k != "sub"}),
        handmade({"alg": "none"}, good, lambda _: b""),
        handmade({"alg": "x" * 40}, good, lambda _: b"sig"),
        jwt.encode(good, rsa_key, algorithm="RS256"),
        hs256(good)[:-4],
    ]
    for token in tokens:
        with pytest.raises(InvalidTokenError) as info:
            await verifier.verify(token)
        exc = info.value
        shown = f"{exc.reason} {exc} {exc!r}"
        assert SECRET not in shown
        for segment in token.split("."):
            if len(segment) >= 8:
                assert segment not in shown
        assert exc.__cause__ is None
        assert exc.__context__ is None or exc.__suppress_context__


def test_looks_like_jwt() -> None:
    assert looks_like_jwt(hs256(claims()))
    assert looks_like_jwt(handmade({"alg": "none"}, claims(), lambda _: b""))
    assert not looks_like_jwt("sk-gw-0123456789abcdef")
    assert not looks_like_jwt("eyJhbGciOiJIUzI1NiJ9.e30")
    assert not looks_like_jwt("eyJhbGciOiJIUzI1NiJ9.e30.sig.extra")
    assert not looks_like_jwt("eyJhbGciOiJIUzI1NiJ9.e+30.sig")
    assert not looks_like_jwt("abc.def.ghi")
    assert not looks_like_jwt("eyJ" + "a" * 20_000 + ".e30.sig")
