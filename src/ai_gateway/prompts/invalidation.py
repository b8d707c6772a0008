"""Telling every gateway instance that a prompt template changed, through Redis pub/sub.

An instance that adds a version or moves a label publishes the template's id on
`<redis_prefix>:prompts`; each instance (itself included) drops its cached copy of that template
when the message arrives, within a second. While the subscription is being (re)made messages may
be missed, so each (re)subscription drops every cached template (`on_change(None)`); the
catalog's cache lifetime bounds what a missed message can cost in any case.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from ai_gateway.observability.logging import get_logger

log = get_logger(__name__)
PING_INTERVAL_S = 5.0
RETRY_S = 1.0
WHOLE = "*"  # the message that drops every cached template


class RedisInvalidation:
    """`on_change(prompt_id)` for each template another instance (or this one) changed;
    `on_change(None)`: drop everything (after a (re)subscription)."""

    def __init__(self, client: Redis, channel: str) -> None:
        self._client = client
        self.channel = channel
        self._on_change: Callable[[str | None], None] = _ignore
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._reconnected = False

    async def start(self, on_change: Callable[[str | None], None], wait_s: float = 1.0) -> None:
        """Follow the channel, calling `on_change`; waits up to `wait_s` for the first
        subscription (a Redis that is down does not hold up start-up: it keeps trying in the
        background)."""
        self._on_change = on_change
        self._task = asyncio.ensure_future(self._follow())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), wait_s)

    async def publish(self, prompt_id: str) -> None:
        """Tell every instance; a Redis that does not answer is logged, never raised (the
        change is stored, and the other instances' caches expire)."""
        try:
            await self._client.publish(self.channel, prompt_id)
        except Exception as exc:
            log.warning("prompt_invalidation_not_published", error=type(exc).__name__)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _follow(self) -> None:
        while True:
            pubsub = self._client.pubsub()
            try:
                await self._subscribe(pubsub)
                await self._pump(pubsub)
            except Exception as exc:
                log.warning("prompt_invalidation_unavailable", error=type(exc).__name__)
            finally:
                if pubsub.connection is not None:
                    pubsub.connection.deregister_connect_callback(self._on_reconnect)
                aclose: Callable[[], Awaitable[object]] = pubsub.aclose
                with contextlib.suppress(Exception):
                    await aclose()
            await asyncio.sleep(RETRY_S)

    async def _subscribe(self, pubsub: PubSub) -> None:
        async with asyncio.timeout(5):
            await pubsub.subscribe(self.channel)
            while True:  # the confirmation: from here on no message is missed
                reply = await pubsub.get_message(timeout=1.0)
                if reply is not None and reply["type"] == "subscribe":
                    break
        self._reconnected = False
        if pubsub.connection is not None:
            pubsub.connection.register_connect_callback(self._on_reconnect)
        self._on_change(None)  # whatever changed while not subscribed
        self._subscribed.set()

    async def _pump(self, pubsub: PubSub) -> None:
        heard = pinged = time.monotonic()
        while not self._reconnected:
            message = await pubsub.get_message(timeout=1.0)
            now = time.monotonic()
            if message is not None:
                heard = now
                if message["type"] == "message":
                    data = message["data"]
                    text = data.decode() if isinstance(data, bytes) else str(data)
                    self._on_change(None if text == WHOLE else text)
            if now - heard > 3 * PING_INTERVAL_S:
                raise TimeoutError("no reply on the pub/sub connection")
            if now - pinged >= PING_INTERVAL_S:
                pinged = now
                await pubsub.ping()

    async def _on_reconnect(self, connection: object) -> None:
        self._reconnected = True  # redis-py resubscribed silently: messages may be lost


def _ignore(prompt_id: str | None) -> None:
    return None
