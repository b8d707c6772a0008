"""The HTTP client the three service clients share: one pooled aiohttp session, a timeout per
call, and the one place where transport failures become `SourceError` reason codes.

No token, URL or body ever goes into an error: details are a status code or an exception's
class name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from ai_gateway.integrations.reasons import Reason, SourceError, reason_for_status

MAX_RESPONSE_BYTES = 1024 * 1024


class ServiceHTTP:
    """One keep-alive session for all the services, created lazily inside the running loop."""

    def __init__(
        self,
        *,
        connect_timeout_s: float,
        max_connections: int,
        token: str | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self._connect_timeout_s = connect_timeout_s
        self._limit = max_connections
        self._headers: Mapping[str, str] = {"Accept": "application/json"}
        if token:
            self._headers = {**self._headers, "Authorization": f"Bearer {token}"}
        self._max_bytes = max_response_bytes
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:  # the headers hold the token
        return f"ServiceHTTP(token={'set' if 'Authorization' in self._headers else 'none'})"

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._limit, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=30
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def request_json(
        self, method: str, url: str, *, payload: Any = None, timeout_s: float
    ) -> Any:
        """Send one request; return the parsed JSON body of a 2xx answer or raise SourceError."""
        timeout = aiohttp.ClientTimeout(
            total=timeout_s, connect=min(self._connect_timeout_s, timeout_s)
        )
        data = None if payload is None else orjson.dumps(payload)
        headers = None if data is None else {"Content-Type": "application/json"}
        try:
            async with self._get_session().request(
                method, url, data=data, headers=headers, timeout=timeout, allow_redirects=False
            ) as resp:
                if not 200 <= resp.status < 300:
                    raise SourceError(reason_for_status(resp.status), f"HTTP {resp.status}")
                body = bytearray()
                async for chunk in resp.content.iter_any():
                    body += chunk
                    if len(body) > self._max_bytes:
                        raise SourceError(Reason.BAD_RESPONSE, f"body over {self._max_bytes} bytes")
        except TimeoutError as exc:  # aiohttp's timeouts derive from it
            raise SourceError(Reason.TIMEOUT, type(exc).__name__) from None
        except aiohttp.ClientError as exc:
            raise SourceError(Reason.UNAVAILABLE, type(exc).__name__) from None
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise SourceError(Reason.BAD_RESPONSE, "not JSON") from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
