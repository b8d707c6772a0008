"""The instance's drain (`streaming/drain.py`) as the handlers see it: where the app's drain is
(the lifespan state in the request's scope), and `until_drained`, which bounds the wait for a
chain's answer (or a stream's first chunk) by the drain's deadline.

A request still waiting for its answer when the drain time is over is stopped (its upstream
call cancelled, its usage record giving the reason) and answered 503 `server_shutting_down`:
the client has had nothing yet, so an HTTP error tells it the truth. Streams already under way
are ended by their response (`api/event_stream.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import Request
from starlette.types import Scope

from ai_gateway.api.common import cancel_on_disconnect
from ai_gateway.errors import GatewayError
from ai_gateway.pipeline.exchange import Exchange
from ai_gateway.streaming.drain import STATE_KEY, Drain, StreamPolicy, shutdown_error

T = TypeVar("T")


def stream_policy(scope: Scope) -> StreamPolicy | None:
    """The app's keep-alive interval and drain, put in every request's scope by its lifespan
    (None for an app run without its lifespan)."""
    state = scope.get("state")
    return state.get(STATE_KEY) if state else None


class _Stop:
    """Stops one request's wait when the drain expires."""

    def __init__(self, task: asyncio.Task[object], drain: Drain, exchange: Exchange | None):
        self.task = task
        self.drain = drain
        self.exchange = exchange
        self.error: GatewayError | None = None

    def drain_began(self) -> None:
        """It goes on."""

    def drain_expired(self) -> None:
        if self.error is None:
            self.error = shutdown_error(self.drain.timeout_s)
            if self.exchange is not None:
                self.exchange.stopped = self.error  # its record says why
            self.task.cancel()


async def until_drained(
    work: Awaitable[T], request: Request, exchange: Exchange | None = None
) -> T:
    """`cancel_on_disconnect(work)`, also stopped when the instance's drain expires: then
    raises the 503 `server_shutting_down` (`exchange`, when given, records that reason)."""
    policy = stream_policy(request.scope)
    if policy is None:
        return await cancel_on_disconnect(work, request.receive)
    task = asyncio.current_task()
    assert task is not None
    stop = _Stop(task, policy.drain, exchange)
    policy.drain.watch(stop)
    try:
        return await cancel_on_disconnect(work, request.receive)
    except asyncio.CancelledError:
        if stop.error is None or task.uncancel() > 0:
            raise
        raise stop.error from None
    finally:
        policy.drain.unwatch(stop)
