"""`cut` (ai_gateway/timers.py): a call past its time limit is cut off with TimeoutError by the
loop's shared timer, a quick call is not, and a cancellation from outside stays a cancellation."""

from __future__ import annotations

import asyncio

import pytest

from ai_gateway.timers import LateStarts, cut


async def test_a_deadline_cuts_off_only_its_own_call_and_lets_an_outside_cancel_through() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await cut(asyncio.sleep(5), 0.02)
    assert 0.02 <= loop.time() - started < 0.2
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    assert await cut(asyncio.sleep(0, "done"), 0.02) == "done"
    assert not LateStarts.for_loop(loop)._waiting, "no deadline left behind"

    task = asyncio.create_task(cut(asyncio.sleep(5), 5))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not LateStarts.for_loop(loop)._waiting
