"""The graceful drain: an instance that has been told to stop (SIGTERM), as its streams see it.

`Drain.begin()` starts it (`serving.drain_on_signals` calls it on the first SIGTERM or SIGINT):
from then on the instance reports not ready (`/health/ready` answers 503), new requests are
answered 503 `server_shutting_down` (`serving.GuardedProtocol`, the WebSocket endpoint) and the
requests in flight go on. `timeout_s` later the drain *expires*: every stream still open ends
with an error event (SSE: an OpenAI-style `error` event; WebSocket: an `error` message for each
request in flight, then a close with 1001), its usage record written first. The server then
shuts down: the lifespan flushes the writer last.

Streams and sockets register with `watch()` while they are open (a set insert when a stream
starts, nothing per chunk) and are told when the drain begins and when it expires.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Protocol

from ai_gateway.errors import ServiceUnavailableError

# The key of the app's `StreamPolicy` in the ASGI lifespan state (and so in every request's
# `scope["state"]`).
STATE_KEY = "ai_gateway.streams"
# After the deadline: the time the streams it ended get to send their error event and close.
END_GRACE_S = 5.0
_POLL_S = 0.05


class Drainable(Protocol):
    def drain_began(self) -> None:
        """The drain began: finish what is in flight, take nothing new."""

    def drain_expired(self) -> None:
        """The drain time is over: end now, with an error the client can see."""


def shutdown_error(timeout_s: float) -> ServiceUnavailableError:
    """What a stream still open at the deadline ends with."""
    return ServiceUnavailableError(
        f"The gateway instance is shutting down and this stream ran past its drain time "
        f"({timeout_s:g} s, drain_timeout_s); the answer is incomplete. Send the request again: "
        "another instance will serve it.",
        code="server_shutting_down",
    )


def refusal_error() -> ServiceUnavailableError:
    """What a request that arrives during the drain is answered (503)."""
    return ServiceUnavailableError(
        "This gateway instance is shutting down and takes no new requests; retry shortly "
        "(another instance will serve it).",
        code="server_shutting_down",
    )


class Drain:
    """One per app. Call every method on the event loop's thread."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.draining = False
        self.expired = False
        self.deadline: float | None = None  # the loop's clock, once draining
        self._watchers: set[Drainable] = set()
        self._on_begin: list[Callable[[], None]] = []  # the server: stop accepting connections
        self._timer: asyncio.TimerHandle | None = None
        # The server's running request tasks (uvicorn's, shared by its connections), when the
        # HTTP protocol has told us (serving.GuardedProtocol): what `wait()` waits for.
        self._requests: Collection[object] | None = None

    # -- what streams do --------------------------------------------------------------------------

    def watch(self, watcher: Drainable) -> None:
        self._watchers.add(watcher)
        if self.draining:  # it started during the drain (its first chunk came late)
            loop = asyncio.get_running_loop()
            loop.call_soon(watcher.drain_expired if self.expired else watcher.drain_began)

    def unwatch(self, watcher: Drainable) -> None:
        self._watchers.discard(watcher)

    @property
    def open_streams(self) -> int:
        return len(self._watchers)

    def on_begin(self, callback: Callable[[], None]) -> None:
        """Call `callback` when the drain begins (the server stops accepting connections)."""
        self._on_begin.append(callback)

    def track(self, requests: Collection[object]) -> None:
        """The server's set of running requests (each HTTP connection passes the same one)."""
        self._requests = requests

    # -- what the server does ---------------------------------------------------------------------

    def begin(self) -> None:
        """Start draining (a second call does nothing)."""
        if self.draining:
            return
        loop = asyncio.get_running_loop()
        self.draining = True
        self.deadline = loop.time() + self.timeout_s
        self._timer = loop.call_at(self.deadline, self.expire)
        for callback in self._on_begin:
            callback()
        for watcher in list(self._watchers):
            watcher.drain_began()

    def expire(self) -> None:
        """The deadline: every stream still open ends now."""
        if self.expired:
            return
        self.draining = self.expired = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for watcher in list(self._watchers):
            watcher.drain_expired()

    def in_flight(self) -> int:
        """Requests running now (the streams open, when the server's requests are not known)."""
        return len(self._requests) if self._requests is not None else len(self._watchers)

    async def wait(self) -> None:
        """Until nothing is in flight, or the deadline has passed and the streams it ended have
        had `END_GRACE_S` to say so."""
        assert self.deadline is not None, "begin() first"
        loop = asyncio.get_running_loop()
        limit = self.deadline + END_GRACE_S
        # Polled: the server's request tasks are uvicorn's, with no event to wait on.
        while self.in_flight() and loop.time() < limit:  # noqa: ASYNC110
            await asyncio.sleep(_POLL_S)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


@dataclass(frozen=True, slots=True)
class StreamPolicy:
    """What every stream of one app shares: the keep-alive interval (0: off) and the drain."""

    keepalive_s: float
    drain: Drain


__all__ = [
    "END_GRACE_S",
    "STATE_KEY",
    "Drain",
    "Drainable",
    "StreamPolicy",
    "refusal_error",
    "shutdown_error",
]
