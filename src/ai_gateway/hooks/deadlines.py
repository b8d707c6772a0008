"""Timeouts for hook calls with one timer for all of them.

`asyncio.timeout()` schedules and cancels a timer per call; for a hook that takes microseconds
that is most of its cost. `Deadlines` keeps the calls in flight in a dict and checks them on one
timer every `tick_s` (scheduled only while calls are in flight): a call past its deadline has its
task cancelled, and `cut` turns that cancellation into TimeoutError. A call is cut off between
`timeout_s` and `timeout_s + tick_s` after it started.

Cancellation reaches a task at the await it is suspended at, which is inside the hook's call
while it is registered, so a call that has returned is never cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from itertools import count
from typing import TypeVar

T = TypeVar("T")


class Deadlines:
    def __init__(self, tick_s: float = 0.01) -> None:
        self._tick_s = tick_s
        self._calls: dict[int, tuple[float, asyncio.Task[object]]] = {}
        self._expired: set[int] = set()
        self._ids = count()
        self._timer: asyncio.TimerHandle | None = None

    async def cut(self, call: Awaitable[T], timeout_s: float) -> T:
        """`await call`, or TimeoutError once it has run `timeout_s`."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        cancelling = task.cancelling()  # cancellations asked before this call (not ours)
        token = next(self._ids)
        self._calls[token] = (loop.time() + timeout_s, task)
        if self._timer is None:
            self._timer = loop.call_later(self._tick_s, self._check, loop)
        try:
            return await call
        except asyncio.CancelledError:
            # Ours alone (as asyncio.timeout decides): a cancellation from outside goes on.
            if token in self._expired and task.uncancel() <= cancelling:
                raise TimeoutError from None
            raise
        finally:
            self._calls.pop(token, None)
            self._expired.discard(token)

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for token, (deadline, task) in list(self._calls.items()):
            if deadline <= now and token not in self._expired:
                self._expired.add(token)
                task.cancel()
        self._timer = loop.call_later(self._tick_s, self._check, loop) if self._calls else None
