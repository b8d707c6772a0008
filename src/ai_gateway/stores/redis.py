"""The shared Redis client and its readiness probe.

One `redis.asyncio.Redis` per process, built from `REDIS_URL` by the app's lifespan and passed to
the stores that need it (circuit breakers, usage windows). The timeouts suit a gateway: a Redis
that does not answer must cost a request milliseconds, not the library's default of ten retries
with backoff. Callers on the hot path still bound each call with their own, shorter deadline.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ai_gateway.observability.health import CheckResult, ReadinessCheck

CONNECT_TIMEOUT_S = 1.0
SOCKET_TIMEOUT_S = 1.0
HEALTH_CHECK_INTERVAL_S = 10  # an idle pooled connection is PINGed before reuse after this long
# redis-py's own default (100) fails a call at once when all are busy: a burst of limit checks
# would then look like "Redis unreachable". Connections are opened only as needed.
MAX_CONNECTIONS = 1000


def create_redis(
    url: str,
    *,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
    socket_timeout_s: float = SOCKET_TIMEOUT_S,
    max_connections: int = MAX_CONNECTIONS,
) -> Redis:
    """A client for `url` (redis://, rediss:// or unix://). No I/O happens here: connections are
    opened on first use. Responses are decoded to `str`. A dropped connection is retried once,
    immediately (a pooled connection the server closed while idle), and never more.

    The URL may carry a password: never log it. `ValueError` for a URL redis-py cannot parse
    (its message does not repeat the URL)."""
    return Redis.from_url(
        url,
        socket_connect_timeout=connect_timeout_s,
        socket_timeout=socket_timeout_s,
        socket_keepalive=True,
        health_check_interval=HEALTH_CHECK_INTERVAL_S,
        retry=Retry(NoBackoff(), 1),
        decode_responses=True,
        max_connections=max_connections,
        client_name="ai-gateway",
    )


async def probe_redis(client: Redis, *, timeout_s: float = 1.0) -> CheckResult:
    """PING within `timeout_s`; never raises (the error's type is reported, never the URL)."""
    try:
        async with asyncio.timeout(timeout_s):
            await client.ping()
    except Exception as exc:  # any failure is "unreachable" to a readiness probe
        return CheckResult(False, f"unreachable: {type(exc).__name__}")
    return CheckResult(True, "ok")


def redis_readiness_check(
    client: Redis, *, name: str = "redis", required: bool = False
) -> ReadinessCheck:
    """A `ReadinessCheck` that PINGs `client`. Not required by default: every feature that uses
    Redis keeps working on local state while it is down."""

    async def probe() -> CheckResult:
        return await probe_redis(client)

    return ReadinessCheck(name=name, required=required, probe=probe)
