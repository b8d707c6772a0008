"""One pipelined Redis connection, for the calls every request makes (admission and settling).

Why not the shared `redis.asyncio.Redis` client: it takes a connection from its pool for each
call, writes it, waits for the answer and gives the connection back, with timers and locks
around each step; per request that was most of what Redis-shared limits cost the gateway's CPU
(docs/performance.md). Here every command of the process goes over one connection: `send`
queues it (synchronously) and returns a future; the commands queued during one turn of the
event loop leave in one write, and the answers, which Redis gives in order, resolve the
futures in order. Under load one write carries many requests' commands.

It also gives an order: Redis runs this process's commands in the order they were sent. The
admission stage relies on it (security/admission.py): a request's settlement, once sent, is
applied before any admission sent after it.

Connection: opened on the first `send` (redis://, rediss:// or unix:// URLs, with a password,
a user name and a database), within `connect_timeout_s`; the commands sent meanwhile wait in
order. When it fails or closes, every pending future fails with `ConnectionError` and the next
`send` reconnects. A reply awaited longer than `stall_timeout_s` means a hung server: the
connection is dropped (its futures fail) when the next command is sent. A caller bounds its
own wait (e.g. with `ai_gateway.timers.cut`); a reply that comes after it gave up is skipped.
Replies are decoded as UTF-8 (as `create_redis`'s client does); a Redis error reply raises
`ResponseError` (or `NoScriptError`) from its future. Secrets (the URL's password) never appear
in errors.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from typing import Any, cast

import hiredis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection, parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

CONNECT_TIMEOUT_S = 1.0
STALL_TIMEOUT_S = 1.0


class RedisPipe(asyncio.Protocol):
    def __init__(
        self,
        url: str,
        *,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        stall_timeout_s: float = STALL_TIMEOUT_S,
    ) -> None:
        """`url` as for `create_redis`; `ValueError` when it cannot be parsed (the message does
        not repeat it). Nothing is opened here."""
        try:
            options = cast(dict[str, Any], parse_url(url))
        except ValueError:
            raise ValueError("the Redis URL cannot be parsed") from None
        self._options = options
        self._connect_timeout_s = connect_timeout_s
        self._stall_timeout_s = stall_timeout_s
        self._transport: asyncio.Transport | None = None
        self._ready = False  # connected, and the connection's own commands queued first
        self._connecting: asyncio.Task[None] | None = None
        self._reader = hiredis.Reader(encoding="utf-8")
        self._waiting: deque[tuple[asyncio.Future[Any], float]] = deque()  # sent, in order
        self._unsent: list[bytes] = []  # queued this turn of the loop, or until connected
        self._flush_scheduled = False
        self._closed = False

    # --- sending ----------------------------------------------------------------------------

    def send(self, *args: str | int | float | bytes) -> asyncio.Future[Any]:
        """Queue one command; its reply (or error) arrives in the returned future. Commands
        are sent, and run by Redis, in the order of the calls; those of one turn of the event
        loop leave together at its end."""
        loop = asyncio.get_running_loop()
        if self._closed:
            raise RedisConnectionError("the Redis pipe is closed")
        future: asyncio.Future[Any] = loop.create_future()
        now = time.monotonic()
        waiting = self._waiting
        if waiting and now - waiting[0][1] > self._stall_timeout_s and self._transport:
            self._transport.abort()  # a reply overdue: the server hangs; fail and reconnect
        self._unsent.append(_pack(args))
        waiting.append((future, now))
        if not self._ready:
            if self._connecting is None:
                self._connecting = loop.create_task(self._connect())
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._ready and self._transport is not None and self._unsent:
            data, self._unsent = b"".join(self._unsent), []
            self._transport.write(data)

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        options = self._options
        cls = options.get("connection_class")
        hello: list[bytes] = []  # sent before the queued commands; their replies are checked
        password, username = options.get("password"), options.get("username")
        if password:
            auth = ("AUTH", username, password) if username else ("AUTH", password)
            hello.append(_pack(auth))
        if options.get("db"):
            hello.append(_pack(("SELECT", int(options["db"]))))
        hello.append(_pack(("CLIENT", "SETNAME", "ai-gateway-pipe")))
        checks = [loop.create_future() for _ in hello]
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                if cls is UnixDomainSocketConnection:
                    await loop.create_unix_connection(lambda: self, options["path"])
                else:
                    tls = _tls(options) if cls is SSLConnection else None
                    host, port = options.get("host", "localhost"), int(options.get("port", 6379))
                    await loop.create_connection(lambda: self, host, port, ssl=tls)
                now = time.monotonic()
                self._waiting.extendleft((check, now) for check in reversed(checks))
                self._unsent[:0] = hello
                self._ready = True
                self._flush()
                for check in checks:
                    await check
        except (OSError, TimeoutError, ResponseError, RedisConnectionError) as exc:
            self._fail(RedisConnectionError(f"cannot connect to Redis: {type(exc).__name__}"))
            if self._transport is not None:
                self._transport.abort()
        finally:
            self._connecting = None

    # --- the protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._reader = hiredis.Reader(encoding="utf-8")

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        waiting = self._waiting
        while (reply := reader.gets()) is not False:
            if not waiting:  # a reply nobody asked for: the stream is out of step
                if self._transport is not None:
                    self._transport.abort()
                return
            future, _ = waiting.popleft()
            if future.done():  # its caller stopped waiting (a timeout)
                continue
            if isinstance(reply, hiredis.ReplyError):
                message = str(reply)
                error = NoScriptError if message.startswith("NOSCRIPT") else ResponseError
                future.set_exception(error(message))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._ready = False
        self._fail(RedisConnectionError("the Redis connection was lost"))

    def _fail(self, error: Exception) -> None:
        waiting, self._waiting = self._waiting, deque()
        self._unsent = []
        for future, _ in waiting:
            if not future.done():
                future.set_exception(error)
                future.exception()  # a caller that gave up must not leave it unretrieved

    async def aclose(self) -> None:
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
        if self._transport is not None:
            self._transport.close()
        self._fail(RedisConnectionError("the Redis pipe is closed"))


def _pack(args: tuple[Any, ...]) -> bytes:
    packed: bytes = hiredis.pack_command(args)
    return packed


def _tls(options: dict[str, Any]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
    if options.get("ssl_cert_reqs") in ("none", ssl.CERT_NONE):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
