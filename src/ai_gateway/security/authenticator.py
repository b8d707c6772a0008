"""Authentication: the `Authorization: Bearer <credential>` header to a `Principal`.

A credential is, in this order: the master key (the operator); a virtual key `sk-gw-<id>_<secret>`
(looked up in the security store, its salted hash verified); a JWT from the Auth service (when
`security.jwt` is configured). Anything else is refused with a 401 whose message says why.

Virtual keys are cached in process after a successful check, for `key_cache_ttl_s` (default 5 s),
so the hot path does not wait on the database. A key revoked or rotated through this instance's
admin API is dropped from its cache at once; another instance stops accepting it within the TTL
(documented in docs/security.md). Expiry is checked on every request, cached or not.
"""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict
from datetime import UTC, datetime

from ai_gateway.errors import AuthenticationError, ServiceUnavailableError
from ai_gateway.security.jwt_auth import (
    InvalidTokenError,
    JWTVerifier,
    KeySetUnavailableError,
    looks_like_jwt,
)
from ai_gateway.security.keys import KEY_PREFIX, ApiKey, parse_key
from ai_gateway.security.principal import MASTER, Principal
from ai_gateway.stores.analytics import StoreUnavailableError
from ai_gateway.stores.security import SecurityStore

MAX_CACHED_KEYS = 10_000


class AuthFailure(AuthenticationError):
    """A refused credential; `reason` is a short machine-readable word for the audit log."""

    def __init__(self, message: str, reason: str, *, code: str = "invalid_api_key") -> None:
        super().__init__(
            message, code=code, headers={"www-authenticate": 'Bearer realm="ai-gateway"'}
        )
        self.reason = reason


def _bearer(header: bytes) -> str | None:
    if header[:7].lower() != b"bearer ":
        return None
    try:
        return header[7:].strip().decode("ascii")
    except UnicodeDecodeError:
        return None


class Authenticator:
    def __init__(
        self,
        master_key: str | None,
        keys: SecurityStore | None,
        jwt: JWTVerifier | None = None,
        *,
        key_cache_ttl_s: float = 5.0,
    ) -> None:
        self._master = master_key.encode() if master_key else None
        self._keys = keys
        self._jwt = jwt
        self._ttl = key_cache_ttl_s
        # token -> (key, cached until (monotonic), expires at (epoch seconds) or inf)
        self._cache: OrderedDict[str, tuple[ApiKey, float, float]] = OrderedDict()

    async def authenticate(self, header: bytes | None) -> Principal:
        """The caller named by an `Authorization` header value; AuthFailure (401) when there is
        none or it is not accepted, ServiceUnavailableError (503) when it cannot be checked now."""
        if not header:
            raise AuthFailure(
                "Missing API key: send it as 'Authorization: Bearer <key>'.",
                "missing",
                code="missing_api_key",
            )
        token = _bearer(header)
        if not token:
            raise AuthFailure(
                "The Authorization header must be 'Bearer <key>'.", "malformed_header"
            )
        if self._master is not None and hmac.compare_digest(token.encode(), self._master):
            return MASTER
        if token.startswith(KEY_PREFIX):
            key = await self._virtual_key(token)
            return Principal(kind="key", user=key.user, team=key.team, key=key)
        if self._jwt is not None and looks_like_jwt(token):
            try:
                identity = await self._jwt.verify(token)
            except KeySetUnavailableError as exc:
                raise ServiceUnavailableError(
                    f"The token could not be verified now: {exc.reason}. Retry shortly."
                ) from None
            except InvalidTokenError as exc:
                raise AuthFailure(
                    f"Invalid token: {exc.reason}.", "invalid_jwt", code="invalid_token"
                ) from None
            return Principal(kind="jwt", user=identity.user, team=identity.team)
        raise AuthFailure("Invalid API key.", "unknown_key")

    async def _virtual_key(self, token: str) -> ApiKey:
        now = time.monotonic()
        cached = self._cache.get(token)
        if cached is not None and cached[1] > now:
            key, _, expires = cached
            if time.time() < expires:
                return key
            raise AuthFailure("This API key has expired.", "expired_key", code="expired_api_key")
        parsed = parse_key(token)
        if parsed is None or self._keys is None:
            raise AuthFailure("Invalid API key.", "unknown_key")
        key_id, secret = parsed
        try:
            stored = await self._keys.get_key(key_id)
        except StoreUnavailableError:
            raise ServiceUnavailableError(
                "API keys cannot be checked: the key store is unavailable. Retry shortly."
            ) from None
        if stored is None or not stored.verify(secret):
            self._cache.pop(token, None)
            raise AuthFailure("Invalid API key.", "unknown_key")
        key = stored
        if key.revoked_at is not None:
            self._cache.pop(token, None)
            raise AuthFailure(
                "This API key has been revoked.", "revoked_key", code="revoked_api_key"
            )
        if not key.active(datetime.now(UTC)):
            raise AuthFailure("This API key has expired.", "expired_key", code="expired_api_key")
        expires = key.expires_at.timestamp() if key.expires_at is not None else float("inf")
        self._cache[token] = (key, now + self._ttl, expires)
        self._cache.move_to_end(token)
        while len(self._cache) > MAX_CACHED_KEYS:
            self._cache.popitem(last=False)
        return key

    def forget(self, key_id: str) -> None:
        """Drop a key from the cache (after it was revoked or rotated here)."""
        for token in [t for t, (key, _, _) in self._cache.items() if key.id == key_id]:
            del self._cache[token]

    async def aclose(self) -> None:
        if self._jwt is not None:
            await self._jwt.aclose()
