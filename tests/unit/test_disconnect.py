"""Cancelling work when the client disconnects, the shared timer that starts the watching, and
the request body's deadline (one entry in that timer)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message

from ai_gateway.api.common import BodyLimit, cancel_on_disconnect, read_body
from ai_gateway.errors import RequestTimeoutError
from ai_gateway.timers import LateStarts


async def test_callbacks_run_once_due_and_discarded_ones_never() -> None:
    late = LateStarts(asyncio.get_running_loop(), min_interval_s=0.001)
    ran: list[str] = []
    late.add("a", 0.02, lambda: ran.append("a"))
    late.add("b", 0.01, lambda: ran.append("b"))  # earlier than the timer set for "a"
    late.add("c", 0.01, lambda: ran.append("c"))
    late.discard("c")
    await asyncio.sleep(0.015)
    assert ran == ["b"]
    await asyncio.sleep(0.02)
    assert ran == ["b", "a"]


async def test_one_timer_serves_many_and_fires_at_most_every_min_interval() -> None:
    late = LateStarts(asyncio.get_running_loop(), min_interval_s=0.03)
    ran: list[int] = []
    late.add(0, 0.0, lambda: ran.append(0))
    late.add(1, 0.005, lambda: ran.append(1))
    await asyncio.sleep(0.015)
    assert ran == [0]  # 1 was due, but the next firing waits for the minimum interval
    await asyncio.sleep(0.04)
    assert ran == [0, 1]


def test_each_loop_has_its_own() -> None:
    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        assert LateStarts.for_loop(first) is LateStarts.for_loop(first)
        assert LateStarts.for_loop(first) is not LateStarts.for_loop(second)
        assert LateStarts.for_loop(second) is LateStarts.for_loop(second)
    finally:
        first.close()
        second.close()


async def test_a_quick_answer_never_watches_the_client() -> None:
    async def receive() -> Message:
        raise AssertionError("receive() must not be called for a quick answer")

    async def work() -> str:
        return "done"

    assert await cancel_on_disconnect(work(), receive, grace_s=0.05) == "done"
    await asyncio.sleep(0.08)  # past the grace period: nothing starts late either


async def test_a_client_gone_during_slow_work_cancels_it() -> None:
    gone = asyncio.Event()
    cancelled = asyncio.Event()

    async def receive() -> Message:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def slow() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "late"

    async def leave() -> None:
        await asyncio.sleep(0.03)
        gone.set()

    leaving = asyncio.create_task(leave())
    with pytest.raises(ClientDisconnect):
        await cancel_on_disconnect(slow(), receive, grace_s=0.01)
    await leaving
    assert cancelled.is_set()


async def test_a_failing_callback_stops_neither_the_others_nor_later_ones() -> None:
    loop = asyncio.get_running_loop()
    reported: list[object] = []
    loop.set_exception_handler(lambda _, context: reported.append(context["exception"]))
    try:
        late = LateStarts(loop, min_interval_s=0.001)
        ran: list[str] = []

        def fail() -> None:
            raise RuntimeError("boom")

        late.add("bad", 0.0, fail)
        late.add("good", 0.0, lambda: ran.append("good"))
        late.add("later", 0.01, lambda: ran.append("later"))
        await asyncio.sleep(0.03)
        assert ran == ["good", "later"]
        assert [type(exc) for exc in reported] == [RuntimeError]
    finally:
        loop.set_exception_handler(None)


def _request(receive: Callable[[], Awaitable[dict[str, object]]]) -> Request:
    scope = {"type": "http", "method": "POST", "headers": [], "path": "/"}
    return Request(scope, receive)


async def test_a_body_that_does_not_arrive_in_time_is_a_408_and_leaves_no_deadline() -> None:
    async def never() -> dict[str, object]:
        await asyncio.sleep(3600)
        raise AssertionError

    late = LateStarts.for_loop(asyncio.get_running_loop())
    with pytest.raises(RequestTimeoutError, match=r"did not arrive within 0\.05s"):
        await read_body(_request(never), BodyLimit(max_bytes=100, timeout_s=0.05))
    assert not late._waiting
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_body_read_in_time_leaves_no_deadline_and_a_cancel_stays_a_cancel() -> None:
    parts = [b'{"a"', b": 1}"]

    async def in_two_parts() -> dict[str, object]:
        await asyncio.sleep(0)
        return {"type": "http.request", "body": parts.pop(0), "more_body": bool(parts)}

    late = LateStarts.for_loop(asyncio.get_running_loop())
    limit = BodyLimit(max_bytes=100, timeout_s=5)
    assert await read_body(_request(in_two_parts), limit) == b'{"a": 1}'
    assert not late._waiting

    async def slow() -> dict[str, object]:
        await asyncio.sleep(3600)
        raise AssertionError

    reading = asyncio.ensure_future(read_body(_request(slow), limit))
    await asyncio.sleep(0.01)
    reading.cancel()  # the client left, or the server stops: not a timeout
    with pytest.raises(asyncio.CancelledError):
        await reading
    assert not late._waiting
