"""An incremental decoder for server-sent events (the WHATWG event-stream format).

Bytes arrive in arbitrary pieces: a line, a UTF-8 sequence or a CRLF pair may be split across
chunks. The decoder buffers bytes, splits complete lines on CR, LF or CRLF, and dispatches an event
on each blank line. It does no I/O, so it is tested with raw byte chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson


@dataclass(slots=True, frozen=True)
class ServerSentEvent:
    data: str
    event: str | None = None
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Feed bytes, get complete events. Not thread-safe; one per stream."""

    __slots__ = ("_buffer", "_data", "_event", "_id", "_retry", "_skip_lf")

    def __init__(self) -> None:
        self._buffer = b""
        self._skip_lf = False
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        if self._skip_lf and chunk:
            # The previous chunk ended in CR: a LF starting this one belongs to that line end.
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        buffer = self._buffer + chunk if self._buffer else chunk
        lines = buffer.splitlines(keepends=True)
        if lines and not lines[-1].endswith((b"\n", b"\r")):
            self._buffer = lines.pop()
        else:
            self._buffer = b""
        if not self._buffer and lines and lines[-1].endswith(b"\r"):
            self._skip_lf = True
        events: list[ServerSentEvent] = []
        for raw in lines:
            event = self._process_line(raw.rstrip(b"\r\n"))
            if event is not None:
                events.append(event)
        return events

    def _process_line(self, line: bytes) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line[:1] == b":":
            return None  # a comment, e.g. a keep-alive
        text = line.decode("utf-8", errors="replace")
        field, sep, value = text.partition(":")
        if sep and value[:1] == " ":
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\0" not in value:
                self._id = value
        elif field == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        if not self._data and self._event is None:
            return None
        event = ServerSentEvent(
            data="\n".join(self._data), event=self._event, id=self._id, retry=self._retry
        )
        self._data = []
        self._event = None
        self._retry = None
        return event

    @property
    def has_pending(self) -> bool:
        """True when bytes or fields of an unfinished event are buffered (a truncated stream)."""
        return bool(self._buffer or self._data or self._event is not None)


def encode_data(payload: object) -> bytes:
    """One `data:` event carrying JSON (orjson never emits raw newlines)."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


DONE = b"data: [DONE]\n\n"
