"""A WebSocket's bounded send queue: what its requests produce waits here for the socket.

A client that reads slowly holds its requests back (a full queue makes `put` wait); one that
does not read at all is found out: `put` gives up when the queue stays full for `timeout_s`,
and the socket is closed (api/ws.py). The queue never grows past `size` messages.
"""

from __future__ import annotations

import asyncio


class SendQueue:
    def __init__(self, size: int, timeout_s: float) -> None:
        self._queue: asyncio.Queue[str] = asyncio.Queue(size)
        self._timeout_s = timeout_s

    async def put(self, message: str) -> bool:
        """Queue `message`; False if the queue stayed full for `timeout_s` (nothing queued)."""
        try:
            self._queue.put_nowait(message)
            return True
        except asyncio.QueueFull:
            pass
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._queue.put(message)
        except TimeoutError:
            return False
        return True

    def offer(self, message: str) -> bool:
        """Queue `message` if there is room now (a last word, not worth waiting for)."""
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            return False
        return True

    async def get(self) -> str:
        return await self._queue.get()

    def __len__(self) -> int:
        return self._queue.qsize()
