"""How a WebSocket session sends (`/ai/ws`, api/ws.py, and the Responses WebSocket mode,
api/responses_ws.py): each request's task sends its own messages straight to the socket, one at
a time, so a request's messages stay in order and a slow reader holds back only the requests it
is slow to read: at most one message per request waits, beside the server's write buffer.

A watchdog looks, four times per `send_timeout_s`, for sends waiting with none done since the
last look: a socket stalled like that for `send_timeout_s` (the client stopped reading) is
stopped with 4008. Cheaper than a timeout around every send, and the same thing for a client
that stops reading.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.websockets import WebSocket

from ai_gateway.errors import InternalError
from ai_gateway.observability.logging import get_logger
from ai_gateway.request_info import RequestInfo

log = get_logger("ai_gateway.ws")

NOT_READING = 4008


def unexpected_error(info: RequestInfo, label: str, exc: BaseException) -> InternalError:
    """Log a socket request's unexpected failure (by type only); the error its client gets."""
    log.error(
        "unhandled_error", request_id=info.request_id, path=label, error_type=type(exc).__name__
    )
    return InternalError(
        f"The gateway failed unexpectedly; quote request id {info.request_id} to report it."
    )


class ClientGone(Exception):
    """A send to a socket that is closed."""


class SocketSender:
    """`stop(code, reason)` is called when the client does not read (the session closes the
    socket and cancels its requests)."""

    def __init__(
        self, websocket: WebSocket, send_timeout_s: float, stop: Callable[[int, str], None]
    ) -> None:
        self._ws = websocket
        self._timeout_s = send_timeout_s
        self._stop = stop
        self._sending = 0  # sends waiting for the socket
        self._sent = 0  # sends done; the watchdog tells a stalled socket by this not moving
        self._watchdog: asyncio.TimerHandle | None = None

    async def deliver(self, text: str) -> None:
        """Send one message. It returns at once unless the server's write buffer is full (the
        client reads slowly). `ClientGone` when the socket is closed (the receive loop sees the
        disconnect and cancels the socket's requests)."""
        self._sending += 1
        try:
            await self._ws.send({"type": "websocket.send", "text": text})
        except Exception:
            raise ClientGone from None
        finally:
            self._sending -= 1
            self._sent += 1

    def start(self) -> None:
        self._watchdog = self._watch(self._sent, None)

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _watch(self, seen: int, stalled_at: float | None) -> asyncio.TimerHandle:
        loop = asyncio.get_running_loop()
        if self._sending and self._sent == seen:
            now = loop.time()
            stalled_at = now if stalled_at is None else stalled_at
            if now - stalled_at >= self._timeout_s:
                self._stop(NOT_READING, "the client does not read")
        else:
            stalled_at = None
        return loop.call_later(self._timeout_s / 4, self._rewatch, self._sent, stalled_at)

    def _rewatch(self, seen: int, stalled_at: float | None) -> None:
        self._watchdog = self._watch(seen, stalled_at)
