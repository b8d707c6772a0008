"""The `websocket:` section of the config file: the WebSocket endpoint `/ai/ws` (`api/ws.py`,
docs/api.md). Part of the config file's schema, so in the settings layer."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class WebSocketConfig(BaseModel):
    """`enabled`: off, an upgrade to `/ai/ws` is refused with a 403 `websocket_disabled` (not a
    404). `max_message_bytes`: a bigger client message closes the socket with 1009.
    `send_timeout_s`: a socket whose sends have waited this long for the client to read (the
    server's write buffer full, nothing sent since) is closed with 4008 and its requests
    cancelled.
    `compression`: accept permessage-deflate when a client offers it (off: chunks are small,
    and deflating each one costs the gateway more CPU than the bytes it saves; SSE is not
    compressed either). `max_in_flight`: requests running at once on one socket.
    `auth_timeout_s`: how long a socket opened without a credential waits for its `auth`
    message."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    max_message_bytes: int = Field(default=1024 * 1024, ge=1024, le=16 * 1024 * 1024)
    send_timeout_s: float = Field(default=10.0, gt=0)
    max_in_flight: int = Field(default=16, ge=1, le=1000)
    compression: bool = False
    auth_timeout_s: float = Field(default=10.0, gt=0)


class StreamingConfig(BaseModel):
    """The `streaming:` section: what every stream (SSE and WebSocket) shares.

    `keepalive_interval_s`: while a stream's upstream is silent (a long reasoning step), an SSE
    comment line (`: keep-alive`) goes to the client after this many seconds without an event,
    and again every as many; WebSocket pings are sent at the same interval. 0 turns both off.
    Keep it under the idle timeout of every proxy between the client and the gateway."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keepalive_interval_s: float = Field(default=15.0, ge=0)
