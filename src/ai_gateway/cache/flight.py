"""Coalescing: identical requests that miss at the same time share one upstream call.

The first request of a key becomes its flight's leader and calls the upstream; the others follow
it. A JSON answer is handed to every follower when it arrives (each decodes its own copy); a
stream's chunks are kept as they arrive, so that a follower that joins mid-way gets every chunk
from the first, then the rest as they come. A leader whose client leaves mid-stream keeps reading
the upstream while followers are still reading it.

A flight ends `done` (an answer, or a complete stream), `failed` (an error the followers get
too), or `abandoned` (the leader was cancelled before an answer: followers try again
themselves, one of them leading).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from decimal import Decimal

import orjson

from ai_gateway.cache.entry import Entry
from ai_gateway.errors import GatewayError, UpstreamError
from ai_gateway.providers.base import JSONObject


class Flight:
    def __init__(self, stream: bool = False) -> None:
        self.stream = stream  # the leader streams: followers may get its chunks as they come
        self.answer: bytes | None = None  # a JSON answer, encoded
        self.chunks: list[bytes] = []  # a stream's chunks so far, encoded
        self.error: GatewayError | None = None
        self.ended = False  # done, failed or abandoned
        self.complete = False  # done: the answer or the whole stream is here
        self.followers = 0
        self.spent: tuple[Decimal | None, int] = (None, 0)  # the answer's cost and tokens
        self._changed: asyncio.Event | None = None  # made when a follower first waits

    # -- the leader ----------------------------------------------------------------------------

    def answered(self, answer: bytes, cost_usd: Decimal | None, tokens: int) -> None:
        """The leader's JSON answer, encoded."""
        self.answer = answer
        self.spent = (cost_usd, tokens)
        self._end(complete=True)

    def chunk(self, data: bytes) -> None:
        """One more chunk of the stream, encoded."""
        self.chunks.append(data)
        self._wake()

    def finished(self, cost_usd: Decimal | None, tokens: int) -> None:
        self.spent = (cost_usd, tokens)
        self._end(complete=True)

    def found(self, entry: Entry) -> None:
        """The answer came from the store (another instance's identical request stored it):
        the followers share it as if the leader had called the upstream."""
        if self.stream:  # followers read chunks
            self.chunks.extend(orjson.dumps(c) for c in entry.as_chunks())
        else:
            self.answer = orjson.dumps(entry.as_answer())
        self.finished(entry.cost_usd, entry.tokens)

    def failed(self, error: GatewayError) -> None:
        self.error = error
        self._end(complete=False)

    def abandoned(self) -> None:
        if not self.ended:
            self._end(complete=False)

    def _end(self, *, complete: bool) -> None:
        self.ended = True
        self.complete = complete
        self._wake()

    def _wake(self) -> None:
        if self._changed is not None:  # someone waits: wake them (later waiters wait anew)
            self._changed.set()
            self._changed = None

    def _changes(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    # -- a follower ----------------------------------------------------------------------------

    async def wait(self) -> None:
        """Until the flight has ended."""
        while not self.ended:
            await self._changes().wait()

    async def follow(self) -> AsyncGenerator[JSONObject, None]:
        """The stream's chunks, from the first; raises the leader's error if it failed, and
        `FlightAbandoned` if the leader left before the stream ended."""
        self.followers += 1
        try:
            sent = 0
            while True:
                while sent < len(self.chunks):
                    sent += 1
                    yield orjson.loads(self.chunks[sent - 1])
                if self.ended:
                    break
                await self._changes().wait()
            if self.error is not None:
                raise self.error
            if not self.complete:
                raise FlightAbandoned()
        finally:
            self.followers -= 1

    def entry(self, now: float) -> Entry | None:
        """The leader's complete answer as an entry (its cost is what a follower saved)."""
        if not self.complete:
            return None
        cost, tokens = self.spent
        if self.answer is not None:
            return Entry(now, orjson.loads(self.answer), None, cost, tokens)
        return Entry(now, None, [orjson.loads(c) for c in self.chunks], cost, tokens)


async def drain(chunks: AsyncIterator[JSONObject], kept: list[bytes], flight: Flight) -> bool:
    """After the leader left: read the rest of the stream for the followers, while there are
    any. True when the stream completed."""
    try:
        async for chunk in chunks:
            data = orjson.dumps(chunk)
            kept.append(data)
            flight.chunk(data)
            if not flight.followers:
                return False
    except GatewayError as exc:
        flight.failed(exc)
        return False
    return True


def abandoned_error() -> UpstreamError:
    return UpstreamError(
        "The identical request whose upstream stream this one shared went away before the "
        "stream ended; retry the request.",
        code="coalesced_stream_abandoned",
    )


class FlightAbandoned(Exception):
    """The leader went away before its stream ended (and no follower kept it going)."""


class Flights:
    """The flights in progress, by cache key (one event loop's)."""

    def __init__(self) -> None:
        self._flights: dict[str, Flight] = {}

    def join(self, digest: str, *, stream: bool = False) -> tuple[Flight, bool]:
        """The key's flight, and whether the caller leads it (it was not flying). A flight that
        completed stays joinable until its answer is stored (`land`), so that a request arriving
        in between does not call the upstream again."""
        flight = self._flights.get(digest)
        if flight is not None and (not flight.ended or flight.complete):
            return flight, False
        flight = self._flights[digest] = Flight(stream)
        return flight, True

    def land(self, digest: str, flight: Flight) -> None:
        if self._flights.get(digest) is flight:
            del self._flights[digest]
