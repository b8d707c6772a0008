"""Time limits and delayed starts with one loop timer for all of them.

A timer per request (`asyncio.timeout`, `call_later` and `cancel`) costs a little on every
request, for limits that almost never fire: a body that has arrived with its headers, a Redis
call answered in a millisecond, a hook that returns in microseconds, an answer faster than the
disconnect watcher's grace. Here each is an entry in a dict, checked by one timer per loop
(`LateStarts`), so the common case only adds and removes it; the price is that a limit fires up
to `min_interval_s` (10 ms) late.

- `LateStarts`: run a callback once its time has come (the disconnect watcher, api/common.py).
- `cut`: `await` a call, or `TimeoutError` once it has run its time (the request body, the
  shared rate limiter's Redis calls with admission's and settlement's scripts, hooks; the
  spend counter's own Redis calls keep `asyncio.timeout`: with admission through Redis they
  only seed a budget's counter, once per period).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class LateStarts:
    """Runs callbacks once their time has come, with one loop timer for all of them: a request
    that ends before its time only adds and removes a dict entry, where a timer per request
    (`call_later` and `cancel`) cost a little on every request. The timer fires at the earliest
    time due, but at most once per `min_interval_s`, so a callback runs at most that much late.
    Shared by the requests of a loop (`for_loop`); use it on the loop's thread only."""

    def __init__(self, loop: asyncio.AbstractEventLoop, min_interval_s: float = 0.01) -> None:
        self._loop = loop
        self._min_interval_s = min_interval_s
        self._waiting: dict[object, tuple[float, Callable[[], None]]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def add(self, key: object, delay_s: float, callback: Callable[[], None]) -> None:
        due = self._loop.time() + delay_s
        self._waiting[key] = (due, callback)
        if self._timer is None or due < self._timer_at:
            self._schedule(due)

    def discard(self, key: object) -> None:
        self._waiting.pop(key, None)

    def _schedule(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = self._loop.time()
        earliest = None
        due_now: list[Callable[[], None]] = []
        for key, (due, callback) in list(self._waiting.items()):
            if due <= now:
                del self._waiting[key]
                due_now.append(callback)
            elif earliest is None or due < earliest:
                earliest = due
        if earliest is not None:
            self._schedule(max(earliest, now + self._min_interval_s))
        for callback in due_now:  # one that fails is reported and stops neither the others
            try:  # nor the timer (as a timer of its own would not)
                callback()
            except Exception as exc:
                self._loop.call_exception_handler(
                    {"message": "LateStarts callback failed", "exception": exc}
                )

    _last: LateStarts | None = None  # the latest loop's: almost always the running one

    @classmethod
    def for_loop(cls, loop: asyncio.AbstractEventLoop) -> LateStarts:
        """The running loop's. Another loop gets a new one: each keeps its own callbacks and
        timer, so sharing is only a saving, never needed for correctness."""
        last = cls._last
        if last is None or last._loop is not loop:
            last = cls._last = cls(loop)
        return last


async def cut(call: Awaitable[T], timeout_s: float) -> T:
    """`await call`, or `TimeoutError` once it has run `timeout_s` (up to the shared timer's
    interval later). As `asyncio.timeout` does, the call's task is cancelled and the
    cancellation turned into `TimeoutError`; a cancellation from outside goes on as one.
    Cancellation reaches the task at the await it is suspended at, inside `call` while the
    deadline is registered, so a call that has returned is never cancelled."""
    task = asyncio.current_task()
    assert task is not None
    cancelling = task.cancelling()  # cancellations asked before this call (not ours)
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    late = LateStarts.for_loop(asyncio.get_running_loop())
    late.add(expire, timeout_s, expire)
    try:
        return await call
    except asyncio.CancelledError:
        if expired and task.uncancel() <= cancelling:
            raise TimeoutError from None
        raise
    finally:
        late.discard(expire)
