"""Verifying the JWTs the Auth service issues: HS* with a shared secret, RS*/ES*/PS* with keys
from its JWKS endpoint.

The token header's `alg` is checked against the configured list before any key is looked up, so
`none` and algorithm confusion (an HS256 token "signed" with the RSA public key) never reach a
verifier; an HMAC algorithm only ever gets the shared secret, an asymmetric one only a JWKS key of
the matching type. Time claims (`exp`, `nbf`, `iat`) are checked against the verifier's clock
with `leeway_s`.

The JWKS is fetched, cached for `jwks_cache_s` and refreshed by `jwks.KeySet`: a token naming an
unknown key id causes at most one refetch per 10 s, concurrent verifications share one fetch, and
when a refresh fails the previous keys are used for up to an hour more. With no keys at all the
verifier raises `KeySetUnavailableError` (the Auth service's fault: 503, not 401).

Successful verifications are cached by token for `cache_ttl_s` (never past the token's `exp`) in
a bounded LRU: a client sends the same token with every request. A key removed from the JWKS
therefore stops a token it signed within `cache_ttl_s`, not at once.

`InvalidTokenError.reason` is written for the client: it never holds the token, the secret or key
material.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import orjson
from jwt.exceptions import InvalidSubjectError
from jwt.types import Options

from ai_gateway.security.jwks import Fetcher, InvalidTokenError, KeySet, KeySetUnavailableError
from ai_gateway.security.jwt_config import HMAC_ALGORITHMS, JWTSettings

_MAX_TOKEN_CHARS = 16_384
_MAX_CLAIM_CHARS = 256
# Three base64url segments (trailing "=" padding tolerated, as PyJWT does), a JSON object header.
_JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]*={0,2}\.[A-Za-z0-9_-]*={0,2}\.[A-Za-z0-9_-]*={0,2}")
# PyJWT's error -> the client's reason, first match wins (subclasses before their bases).
_DECODE_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.InvalidSignatureError, "the token's signature is invalid"),
    (jwt.InvalidAlgorithmError, "the token's algorithm is not accepted"),
    (jwt.InvalidIssuerError, "the token's issuer is not accepted"),
    (jwt.InvalidAudienceError, "the token's audience is not accepted"),
    (jwt.InvalidKeyError, "the token's signing key is not accepted"),
    (InvalidSubjectError, "the token's 'sub' claim is invalid"),
    (jwt.DecodeError, "the token is malformed"),
)


@dataclass(frozen=True, slots=True)
class JWTIdentity:
    """Who a verified token speaks for."""

    user: str
    team: str | None
    subject: str | None
    expires_at: float | None


def looks_like_jwt(token: str) -> bool:
    """A cheap structural test (three base64url segments, a JSON header): tells a JWT from an
    API key. It proves nothing about the token's validity."""
    return len(token) <= _MAX_TOKEN_CHARS and _JWT_SHAPE.fullmatch(token) is not None


@dataclass(slots=True)
class _Verified:
    identity: JWTIdentity
    until: float


class JWTVerifier:
    """Verifies tokens against `settings`; one per process, shared by all requests.

    `fetch_jwks(url) -> bytes` replaces the default HTTP fetch (aiohttp, 3 s timeout). `clock`
    (wall time: token times) and `monotonic` (key set refresh timing) exist for tests.
    """

    def __init__(
        self,
        settings: JWTSettings,
        *,
        fetch_jwks: Fetcher | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._algorithms = frozenset(settings.algorithms or ())
        secret = settings.secret
        self._secret = secret.get_secret_value().encode() if secret is not None else None
        self._clock = clock
        self._keys = KeySet(
            settings.jwks_url or "",
            cache_s=settings.jwks_cache_s,
            fetch=fetch_jwks,
            monotonic=monotonic,
        )
        self._verified: OrderedDict[str, _Verified] = OrderedDict()
        self._options: Options = {
            # Time claims are checked by _identity against `clock`.
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
            "enforce_minimum_key_length": True,
        }

    async def verify(self, token: str) -> JWTIdentity:
        """The identity `token` speaks for, or InvalidTokenError with a client-safe reason."""
        now = self._clock()
        hit = self._verified.get(token)
        if hit is not None:
            if now < hit.until:
                self._verified.move_to_end(token)
                return hit.identity
            del self._verified[token]
        header = _header(token)
        alg = header.get("alg")
        if alg.__class__ is not str or alg not in self._algorithms:
            raise InvalidTokenError(_algorithm_reason(alg))
        if alg in HMAC_ALGORITHMS:
            key: bytes | jwt.PyJWK | None = self._secret
        else:
            key = await self._keys.key_for(header.get("kid"), alg)
        payload = self._decode(token, key, alg)
        identity = self._identity(payload, now)
        self._remember(token, identity, now)
        return identity

    async def aclose(self) -> None:
        await self._keys.aclose()

    # --- checking the token ----------------------------------------------------------------------

    def _decode(self, token: str, key: bytes | jwt.PyJWK | None, alg: str) -> dict[str, Any]:
        if key is None:  # unreachable: settings guarantee a secret for HS*
            raise InvalidTokenError("the token's algorithm is not accepted")
        settings = self._settings
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=[alg],
                issuer=settings.issuer,
                audience=settings.audience,
                options=self._options,
            )
        except jwt.PyJWTError as exc:
            raise InvalidTokenError(_decode_reason(exc)) from None
        except (ValueError, TypeError):
            raise InvalidTokenError("the token is malformed") from None
        if not isinstance(payload, dict):
            raise InvalidTokenError("the token is malformed")
        return payload

    def _identity(self, payload: dict[str, Any], now: float) -> JWTIdentity:
        settings = self._settings
        leeway = settings.leeway_s
        exp = _time_claim(payload, "exp")
        if exp is None and settings.require_exp:
            raise InvalidTokenError("the token has no 'exp' claim")
        if exp is not None and now >= exp + leeway:
            raise InvalidTokenError("the token has expired")
        nbf = _time_claim(payload, "nbf")
        iat = _time_claim(payload, "iat")
        if (nbf is not None and nbf > now + leeway) or (iat is not None and iat > now + leeway):
            raise InvalidTokenError("the token is not yet valid")
        user = _text_claim(payload, settings.user_claim)
        if user is None:
            raise InvalidTokenError(f"the token has no {settings.user_claim!r} claim")
        team = _text_claim(payload, settings.team_claim) if settings.team_claim else None
        sub = payload.get("sub")
        subject = sub if isinstance(sub, str) and sub else None
        return JWTIdentity(user=user, team=team, subject=subject, expires_at=exp)

    def _remember(self, token: str, identity: JWTIdentity, now: float) -> None:
        until = now + self._settings.cache_ttl_s
        if identity.expires_at is not None:
            until = min(until, identity.expires_at)
        if until <= now:
            return
        self._verified[token] = _Verified(identity, until)
        if len(self._verified) > self._settings.cache_max_entries:
            self._verified.popitem(last=False)


def _header(token: str) -> dict[str, Any]:
    """The token's header, unverified. Parsed here rather than by PyJWT, which would decode
    (and check character by character) the whole token once more before `decode` does it."""
    if not looks_like_jwt(token):
        raise InvalidTokenError("the token is malformed")
    segment = token[: token.index(".")].rstrip("=")
    try:
        header = orjson.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError):
        raise InvalidTokenError("the token is malformed") from None
    if not isinstance(header, dict) or header.get("kid", "").__class__ is not str:
        raise InvalidTokenError("the token is malformed")
    return header


def _algorithm_reason(alg: Any) -> str:
    if alg.__class__ is str and 0 < len(alg) <= 16 and alg.isalnum():
        return f"the token's algorithm {alg!r} is not accepted"
    return "the token's algorithm is not accepted"


def _decode_reason(exc: jwt.PyJWTError) -> str:
    """A client-safe reason for PyJWT's error (its own messages are not shown)."""
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"the token has no {exc.claim!r} claim"  # iss or aud: names from our settings
    for kind, reason in _DECODE_REASONS:
        if isinstance(exc, kind):
            return reason
    return "the token is invalid"


def _time_claim(payload: dict[str, Any], name: str) -> float | None:
    value = payload.get(name)
    if value is None:
        return None
    try:
        number = float(value) if value.__class__ in (int, float) else math.nan
    except OverflowError:  # an integer too large for a float
        number = math.nan
    if not math.isfinite(number):
        raise InvalidTokenError(f"the token's {name!r} claim is not a number")
    return number


def _text_claim(payload: dict[str, Any], name: str) -> str | None:
    value = payload.get(name)
    if value is None or value == "":
        return None
    if value.__class__ is int:
        return str(value)
    if value.__class__ is not str:
        raise InvalidTokenError(f"the token's {name!r} claim is not a string")
    if len(value) > _MAX_CLAIM_CHARS:
        raise InvalidTokenError(f"the token's {name!r} claim is too long")
    return str(value)


__all__ = [
    "InvalidTokenError",
    "JWTIdentity",
    "JWTVerifier",
    "KeySetUnavailableError",
    "looks_like_jwt",
]
