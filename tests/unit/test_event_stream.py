"""The SSE response (api/event_stream.py) closes its body however the stream ends, before the
response returns: a client that leaves mid-stream runs every stage's clean-up (usage record,
settlement, upstream connection) at once, in the event loop, not when the generator is
collected."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from ai_gateway.api.event_stream import EventStreamResponse
from ai_gateway.errors import GatewayError

SCOPE: dict[str, Any] = {"type": "http", "method": "POST", "path": "/v1/chat/completions"}


def response(body: AsyncGenerator[bytes, None]) -> EventStreamResponse:
    def expired(drain: Any) -> GatewayError:
        raise AssertionError("no drain here")

    return EventStreamResponse(
        body, headers=lambda: {}, on_expire=expired, on_error=lambda exc: None
    )


def test_a_client_that_leaves_mid_stream_has_the_body_closed_before_the_response_returns() -> None:
    async def scenario() -> None:
        closed: list[str] = []
        left = asyncio.Event()

        async def body() -> AsyncGenerator[bytes, None]:
            try:
                while True:  # an upstream still streaming
                    yield b"data: more\n\n"
                    await asyncio.sleep(0.01)
            finally:
                await asyncio.sleep(0)  # clean-up that awaits, as the stages' does
                closed.append(asyncio.current_task().get_name())  # type: ignore[union-attr]

        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if message.get("body"):
                left.set()
                await asyncio.sleep(1)  # a slow client: the disconnect comes during a write

        async def receive() -> dict[str, Any]:
            await left.wait()
            return {"type": "http.disconnect"}

        generator = body()
        stream = response(generator)
        await asyncio.wait_for(stream(SCOPE, receive, send), 5)
        assert closed, "the body was not closed when the response returned"
        assert generator.ag_frame is None  # finished, not suspended
        assert sent[0]["type"] == "http.response.start"

    asyncio.run(scenario())


def test_a_stream_that_ends_is_closed_once_and_ends_the_response() -> None:
    async def scenario() -> None:
        closed = 0

        async def body() -> AsyncGenerator[bytes, None]:
            nonlocal closed
            try:
                yield b"data: 1\n\n"
                yield b"data: [DONE]\n\n"
            finally:
                closed += 1

        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        async def receive() -> dict[str, Any]:
            await asyncio.Event().wait()  # the client stays
            return {"type": "http.disconnect"}

        await asyncio.wait_for(response(body())(SCOPE, receive, send), 5)
        assert closed == 1
        assert [m.get("body") for m in sent[1:]] == [b"data: 1\n\n", b"data: [DONE]\n\n", b""]
        assert sent[-1]["more_body"] is False

    asyncio.run(scenario())
