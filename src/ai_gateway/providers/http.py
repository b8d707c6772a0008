"""The shared, pooled HTTP client every adapter uses, and the translation of transport failures
into the gateway's error tree (the one place aiohttp exceptions are caught). Requests go
through the egress proxy the environment names, if any (`providers/egress.py`)."""

from __future__ import annotations

import asyncio
import email.utils
import errno
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson

from ai_gateway.errors import (
    GatewayError,
    UpstreamConnectionError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
)
from ai_gateway.observability.tracing import Tracing
from ai_gateway.providers.egress import DIRECT, EgressProxies
from ai_gateway.routing.deployments import Deployment

ErrorMapper = Callable[[Deployment, int, bytes, Mapping[str, str]], GatewayError]


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (delta-seconds or an HTTP date)."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class UpstreamHTTP:
    """One pooled keep-alive client per provider. Created lazily inside the running loop."""

    def __init__(
        self,
        *,
        connect_timeout_s: float,
        request_timeout_s: float,
        stream_idle_timeout_s: float,
        max_connections: int,
        tracing: Tracing | None = None,
        egress: EgressProxies | None = None,
    ) -> None:
        """`tracing`: when on, every request carries the current span's `traceparent`.
        `egress`: the forward proxies (HTTPS_PROXY, NO_PROXY...); None: always direct."""
        self._limit = max_connections
        self._tracing = tracing
        self._egress = egress if egress is not None and egress.active else None
        # A whole answer: one limit for the whole request (a read gap limit as long would be
        # redundant, and aiohttp re-arms a timer for it on every read).
        self._timeout = aiohttp.ClientTimeout(total=request_timeout_s, connect=connect_timeout_s)
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout_s, sock_read=stream_idle_timeout_s
        )
        self._connect_timeout = connect_timeout_s
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._limit, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=30
            )
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=True, skip_auto_headers=("User-Agent",)
            )
        return self._session

    def _timeout_for(self, deployment: Deployment) -> aiohttp.ClientTimeout:
        if deployment.timeout_s is None:
            return self._timeout
        return aiohttp.ClientTimeout(
            total=deployment.timeout_s, connect=min(self._connect_timeout, deployment.timeout_s)
        )

    def _stream_timeout_for(self, deployment: Deployment) -> aiohttp.ClientTimeout:
        # A stream has no total limit; the deployment's timeout bounds the wait for the first
        # byte and every gap between chunks.
        if deployment.timeout_s is None:
            return self._stream_timeout
        return aiohttp.ClientTimeout(
            total=None,
            connect=min(self._connect_timeout, deployment.timeout_s),
            sock_read=deployment.timeout_s,
        )

    async def request_json(
        self,
        deployment: Deployment,
        method: str,
        url: str,
        headers: Mapping[str, str],
        payload: bytes | None,
        on_error: ErrorMapper,
    ) -> Any:
        """Send one request and return the parsed JSON body, or raise a GatewayError."""
        timeout = self._timeout_for(deployment)
        if self._tracing is not None:
            headers = self._tracing.inject(headers)
        proxy, proxy_headers, extra = self._egress.route(url) if self._egress else DIRECT
        if extra:
            headers = {**headers, **extra}
        try:
            async with self._get_session().request(
                method,
                url,
                data=payload,
                headers=headers,
                timeout=timeout,
                proxy=proxy,
                proxy_headers=proxy_headers,
            ) as resp:
                body = await resp.read()
                if resp.status >= 400:
                    raise on_error(deployment, resp.status, body, resp.headers)
        except GatewayError:
            raise
        except Exception as exc:
            raise translate_transport_error(exc, deployment, timeout.total) from None
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UpstreamProtocolError(
                f"The upstream provider ({deployment.provider}, deployment '{deployment.id}') "
                f"answered HTTP {resp.status} with a body that is not JSON."
            ) from None

    @asynccontextmanager
    async def stream(
        self,
        deployment: Deployment,
        url: str,
        headers: Mapping[str, str],
        payload: bytes,
        on_error: ErrorMapper,
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """POST and yield an iterator over the response body's bytes as they arrive.

        Leaving the context early (the client went away) closes the upstream connection. The
        iterator is closed when the context ends, however it ends: an adapter that stops
        reading at the stream's last event does not leave it to the garbage collector (which
        closes an async generator through the event loop: a wake-up and a task per stream).
        """
        timeout = self._stream_timeout_for(deployment)
        if self._tracing is not None:
            headers = self._tracing.inject(headers)
        proxy, proxy_headers, extra = self._egress.route(url) if self._egress else DIRECT
        if extra:
            headers = {**headers, **extra}
        try:
            async with self._get_session().post(
                url,
                data=payload,
                headers=headers,
                timeout=timeout,
                proxy=proxy,
                proxy_headers=proxy_headers,
            ) as resp:
                if resp.status >= 400:
                    body = await resp.read()
                    raise on_error(deployment, resp.status, body, resp.headers)
                chunks = _guarded(resp.content.iter_any(), deployment, timeout.sock_read)
                try:
                    yield chunks
                finally:
                    await chunks.aclose()
        except GatewayError:
            raise
        except (GeneratorExit, asyncio.CancelledError):
            raise
        except Exception as exc:
            raise translate_transport_error(exc, deployment, timeout.sock_read) from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _guarded(
    chunks: AsyncIterator[bytes], deployment: Deployment, timeout_s: float | None
) -> AsyncGenerator[bytes, None]:
    try:
        async for chunk in chunks:
            yield chunk
    except Exception as exc:
        raise translate_transport_error(exc, deployment, timeout_s) from None


def translate_transport_error(
    exc: BaseException, deployment: Deployment, timeout_s: float | None
) -> GatewayError:
    where = f"({deployment.provider}, deployment '{deployment.id}')"
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        limit = f" within {timeout_s:g}s" if timeout_s else ""
        return UpstreamTimeoutError(f"The upstream provider {where} did not answer{limit}.")
    if isinstance(exc, aiohttp.ClientProxyConnectionError | aiohttp.ClientHttpProxyError):
        # The egress proxy (HTTPS_PROXY / HTTP_PROXY), not the provider: say so.
        status = f" (HTTP {exc.status})" if isinstance(exc, aiohttp.ClientHttpProxyError) else ""
        return UpstreamConnectionError(
            f"Could not reach the upstream provider {where} through the egress proxy "
            f"(HTTPS_PROXY / HTTP_PROXY): the proxy refused or failed{status}. Check the proxy, "
            "or list the provider's host in NO_PROXY."
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = {
            errno.ECONNREFUSED: "connection refused",
            errno.EHOSTUNREACH: "host unreachable",
            errno.ENETUNREACH: "network unreachable",
        }.get(exc.os_error.errno or 0, "connection failed")
        if isinstance(exc, aiohttp.ClientConnectorDNSError):
            reason = "its host name did not resolve"
        error = UpstreamConnectionError(
            f"Could not connect to the upstream provider {where}: {reason}."
        )
        error.internal_detail = str(exc)
        return error
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
        return UpstreamConnectionError(
            f"The upstream provider {where} closed the connection before the response was complete."
        )
    if isinstance(exc, aiohttp.ClientError | OSError):
        return UpstreamConnectionError(
            f"The connection to the upstream provider {where} failed ({type(exc).__name__})."
        )
    raise exc
