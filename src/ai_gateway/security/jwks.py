"""The Auth service's signing keys, from its JWKS endpoint: `KeySet.key_for(kid, alg)`.

The JWKS is fetched on first use and cached for `cache_s`. A token naming an unknown key id
causes at most one refetch per 10 s, concurrent lookups share one fetch, and when a refresh fails
the previous keys are used for up to an hour more. With no keys at all the lookup raises
`KeySetUnavailableError` (the Auth service's fault: 503, not 401).

Only RSA and EC signing keys are taken from the set (never a symmetric "oct" key), and a key is
handed out only for an algorithm of its own type (RSA for RS*/PS*, EC of the matching curve for
ES*) that does not contradict the key's own `alg`.

The errors' `reason` is written for the client: it never holds key material.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import jwt
import orjson

from ai_gateway.observability.logging import get_logger

log = get_logger(__name__)

_EC_CURVES = {"ES256": "P-256", "ES384": "P-384"}
_REFETCH_INTERVAL_S = 10.0  # unknown kid, or retry after a failed refresh with keys in hand
_RETRY_WITHOUT_KEYS_S = 1.0  # retry after a failed fetch when there are no keys at all
_MAX_STALE_S = 3600.0  # how long past its expiry a key set is used while refreshes fail
_FETCH_TIMEOUT_S = 3.0
_MAX_JWKS_BYTES = 1 << 20

Fetcher = Callable[[str], Awaitable[bytes]]


class InvalidTokenError(Exception):
    """The token is not accepted; `reason` is safe to show to the client (401)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeySetUnavailableError(InvalidTokenError):
    """The Auth service's key set cannot be fetched, so no token can be verified (503)."""


class KeySet:
    """The keys of the JWKS at `url`; one per verifier, shared by all requests.

    `fetch(url) -> bytes` replaces the default HTTP fetch (aiohttp, 3 s timeout). `monotonic`
    (refresh timing) exists for tests.
    """

    def __init__(
        self,
        url: str,
        *,
        cache_s: float,
        fetch: Fetcher | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._cache_s = cache_s
        self._fetch: Fetcher = fetch or self._http_fetch
        self._monotonic = monotonic
        self._session: aiohttp.ClientSession | None = None
        self._keys: dict[str, dict[str, Any]] | None = None  # kid ("" when absent) -> JWK
        self._prepared: dict[tuple[str, str], jwt.PyJWK] = {}
        self._keys_at = -math.inf  # monotonic time of the last successful fetch
        self._attempt_at = -math.inf  # monotonic time of the last fetch attempt
        self._inflight: asyncio.Task[None] | None = None

    async def key_for(self, kid: Any, alg: str) -> jwt.PyJWK:
        """The key named `kid` (None: the set's only key), ready to verify `alg`; or
        InvalidTokenError (KeySetUnavailableError when there is no usable key set)."""
        if self._inflight is not None:
            await asyncio.shield(self._inflight)
        now = self._monotonic()
        if self._keys is None or now - self._keys_at >= self._cache_s:
            retry_after = _RETRY_WITHOUT_KEYS_S if self._keys is None else _REFETCH_INTERVAL_S
            if now - self._attempt_at >= retry_after:
                await self._refresh()
                now = self._monotonic()
        keys = self._keys
        if keys is None or now - self._keys_at >= self._cache_s + _MAX_STALE_S:
            raise KeySetUnavailableError("cannot verify the token: the key set is unavailable")
        if kid is None:
            if len(keys) != 1:
                raise InvalidTokenError("the token has no key id ('kid')")
            kid = next(iter(keys))
        elif kid not in keys and now - self._attempt_at >= _REFETCH_INTERVAL_S:
            await self._refresh()
            keys = self._keys or {}
        jwk = keys.get(kid)
        if jwk is None:
            raise InvalidTokenError("the token's key id is unknown")
        return self._prepare(kid, jwk, alg)

    async def aclose(self) -> None:
        task, self._inflight = self._inflight, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _prepare(self, kid: str, jwk: dict[str, Any], alg: str) -> jwt.PyJWK:
        prepared = self._prepared.get((kid, alg))
        if prepared is not None:
            return prepared
        declared = jwk.get("alg")
        kty = jwk.get("kty")
        if alg in _EC_CURVES:
            fits = kty == "EC" and jwk.get("crv") == _EC_CURVES[alg]
        else:
            fits = kty == "RSA"
        if not fits or (declared is not None and declared != alg):
            raise InvalidTokenError("the token's algorithm does not match its key")
        try:
            prepared = jwt.PyJWK(jwk, algorithm=alg)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            log.warning("jwks_key_unusable", kid=kid, error=type(exc).__name__)
            raise InvalidTokenError("the token's signing key is not usable") from None
        self._prepared[(kid, alg)] = prepared
        return prepared

    async def _refresh(self) -> None:
        """Fetch the key set, or join the fetch already under way."""
        task = self._inflight
        if task is None:
            self._attempt_at = self._monotonic()
            task = asyncio.create_task(self._load(), name="jwks-fetch")
            self._inflight = task
            task.add_done_callback(self._fetch_done)
        await asyncio.shield(task)

    def _fetch_done(self, task: asyncio.Task[None]) -> None:
        if self._inflight is task:
            self._inflight = None

    async def _load(self) -> None:
        """Never raises (but for cancellation): a failure leaves the previous keys in place."""
        try:
            keys = _parse_jwks(await self._fetch(self._url))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("jwks_fetch_failed", error=type(exc).__name__, detail=str(exc)[:200])
            return
        self._keys = keys
        self._prepared = {}
        self._keys_at = self._monotonic()

    async def _http_fetch(self, url: str) -> bytes:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=_FETCH_TIMEOUT_S)
            )
        async with self._session.get(url, headers={"Accept": "application/json"}) as response:
            if response.status != 200:
                raise ValueError(f"the JWKS endpoint answered HTTP {response.status}")
            body = bytearray()
            async for chunk in response.content.iter_any():
                body += chunk
                if len(body) > _MAX_JWKS_BYTES:
                    raise ValueError("the JWKS document is larger than 1 MiB")
            return bytes(body)


def _parse_jwks(body: bytes) -> dict[str, dict[str, Any]]:
    """The signing keys of a JWKS document by kid ("" for a key without one)."""
    document = orjson.loads(body)
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError("the JWKS document has no 'keys' list")
    keys: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("kty") not in ("RSA", "EC"):
            continue  # symmetric ("oct") keys are never taken from a key set
        if entry.get("use", "sig") != "sig":
            continue
        kid = entry.get("kid", "")
        if isinstance(kid, str):
            keys.setdefault(kid, entry)
    if not keys:
        raise ValueError("the JWKS document holds no RSA or EC signing key")
    return keys


__all__ = ["Fetcher", "InvalidTokenError", "KeySet", "KeySetUnavailableError"]
