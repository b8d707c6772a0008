"""The recording stage alone, with fake inner stages: the status of each record is the one the
client gets, for answers, errors and streams however they end; a fan-out's request leaves its
branches' records, not one of its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from ai_gateway.errors import GuardrailBlockedError, RateLimitError, UpstreamError
from ai_gateway.model_registry import ModelRegistry
from ai_gateway.observability.metrics import Metrics
from ai_gateway.pipeline.chain import Next
from ai_gateway.pipeline.exchange import Exchange, Outcome, chat_exchange
from ai_gateway.pipeline.record import Record
from ai_gateway.request_info import RequestInfo
from ai_gateway.security.config import RequestLimits
from ai_gateway.usage.recorder import UsageRecorder
from ai_gateway.usage.records import UsageRecord


class Sink:
    def __init__(self) -> None:
        self.records: list[UsageRecord] = []

    def submit_usage(self, record: UsageRecord) -> None:
        self.records.append(record)


def exchange(stream: bool = False) -> Exchange:
    body = {"model": "m", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    return chat_exchange(body, RequestInfo(request_id="r"), RequestLimits())


def recorded(inner: Next, ex: Exchange, *, chunks_read: int | None = None) -> UsageRecord:
    """Run Record around `inner`; read `chunks_read` chunks of a stream (None: all) then close
    it. The one record written."""
    sink = Sink()
    stage = Record(UsageRecorder(ModelRegistry([]), Metrics(), sink))

    async def go() -> None:
        try:
            outcome = await stage(ex, inner)
        except BaseException:
            return
        if isinstance(outcome, dict):
            return
        try:
            n = 0
            async for _ in outcome:
                n += 1
                if chunks_read is not None and n == chunks_read:
                    break
        except Exception:  # the renderer turns it into an error event
            return
        finally:
            await outcome.aclose()

    asyncio.run(go())
    [record] = sink.records
    return record


def raising(exc: BaseException) -> Next:
    async def inner(ex: Exchange) -> Outcome:
        raise exc

    return inner


def streaming(fail_after: int | None = None, exc: Exception | None = None) -> Next:
    async def chunks() -> AsyncGenerator[dict[str, Any], None]:
        for n in range(3):
            if fail_after is not None and n == fail_after:
                assert exc is not None
                raise exc
            yield {"choices": [{"index": 0, "delta": {"content": str(n)}}]}

    async def inner(ex: Exchange) -> Outcome:
        return chunks()

    return inner


async def answer(ex: Exchange) -> Outcome:
    return {"object": "chat.completion"}


def test_an_answer_is_200() -> None:
    r = recorded(answer, exchange())
    assert (r.status, r.error_type, r.stream, r.model, r.route) == (200, None, False, "m", "chat")


@pytest.mark.parametrize(
    ("exc", "status", "error_type"),
    [
        (GuardrailBlockedError("blocked"), 400, "invalid_request_error"),
        (RateLimitError("slow down"), 429, "rate_limit_error"),
        (UpstreamError("down"), 502, "upstream_error"),
        (asyncio.CancelledError(), 499, "client_disconnected"),
        (RuntimeError("bug"), 500, "server_error"),
    ],
)
def test_an_error_raised_inside_is_its_status(
    exc: BaseException, status: int, error_type: str
) -> None:
    r = recorded(raising(exc), exchange())
    assert (r.status, r.error_type) == (status, error_type)


def test_a_stream_read_to_its_end_is_200() -> None:
    r = recorded(streaming(), exchange(stream=True))
    assert (r.status, r.error_type, r.stream) == (200, None, True)


def test_a_stream_failing_before_its_first_chunk_is_the_error_s_status() -> None:
    r = recorded(streaming(0, UpstreamError("down")), exchange(stream=True))
    assert (r.status, r.error_type) == (502, "upstream_error")


def test_a_stream_failing_after_its_first_chunk_is_a_200_with_the_error() -> None:
    r = recorded(streaming(2, GuardrailBlockedError("blocked")), exchange(stream=True))
    assert (r.status, r.error_type, r.error_code) == (
        200,
        "invalid_request_error",
        "content_filter",
    )


def test_a_stream_closed_mid_way_is_a_200_cut_by_the_client() -> None:
    r = recorded(streaming(), exchange(stream=True), chunks_read=1)
    assert (r.status, r.error_type) == (200, "client_disconnected")


def test_a_fanout_request_leaves_its_branches_records_only() -> None:
    ex = exchange()
    ex.branches = []
    sink = Sink()
    stage = Record(UsageRecorder(ModelRegistry([]), Metrics(), sink))
    asyncio.run(stage(ex, answer))
    assert sink.records == []
