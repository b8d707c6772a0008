"""The WebSocket endpoint's messages (docs/api.md, "WebSocket"): reading a client's message, and
the server's answers. No I/O.

The client sends JSON objects:

- `{"type": "request", "id", "endpoint": "chat.completions" | "code.generate" | "embeddings",
  "body": {...}}`: one request, `body` as over HTTP;
- `{"type": "cancel", "id"}`: cancel that request (its upstream call too);
- `{"type": "ping"}`: answered with `{"type": "pong"}`;
- `{"type": "auth", "token"}`: the credential, first, on a socket opened without one.

The server answers a request `id` with `chunk` messages (`data`: the same object as an SSE
event) and then `done` (with the usage), or one `response` (`data`: the JSON answer), or one
`error` (`error`: the OpenAI-style error object).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from ai_gateway.errors import GatewayError, InvalidRequestError

ENDPOINTS = ("chat.completions", "code.generate", "embeddings")
TYPES = ("request", "cancel", "ping", "auth")
MAX_ID_CHARS = 128


class ProtocolError(InvalidRequestError):
    """A message the gateway cannot act on; answered with an `error` and the socket stays open.
    `request_id`: the message's id, when it could be read."""

    def __init__(self, message: str, request_id: str | None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.request_id = request_id


@dataclass(frozen=True, slots=True)
class Incoming:
    """A client's message, checked. `id` is set for `request` and `cancel`; `endpoint` and
    `body` for `request`; `token` for `auth`."""

    type: str
    id: str | None = None
    endpoint: str = ""
    body: Any = None
    token: str = ""


def parse(data: str | bytes) -> Incoming:
    """A client's message, or ProtocolError."""
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(
            f"The message is not valid JSON ({exc.msg}); send one JSON object per message.",
            None,
            code="invalid_message",
        ) from None
    if not isinstance(message, dict):
        raise ProtocolError(
            "The message must be a JSON object with a 'type'.", None, code="invalid_message"
        )
    raw_id = message.get("id")
    request_id = raw_id if isinstance(raw_id, str) else None
    kind = message.get("type")
    if kind not in TYPES:
        raise ProtocolError(
            f"Unknown message type {kind!r}; the types are {', '.join(TYPES)}.",
            request_id,
            param="type",
            code="unknown_type",
        )
    if kind == "ping":
        return Incoming("ping")
    if kind == "auth":
        token = message.get("token")
        if not isinstance(token, str) or not token:
            raise ProtocolError(
                "An 'auth' message needs a 'token': the API key or JWT.", None, param="token"
            )
        return Incoming("auth", token=token)
    if request_id is None or not 0 < len(request_id) <= MAX_ID_CHARS:
        raise ProtocolError(
            f"A '{kind}' message needs an 'id': a string of 1 to {MAX_ID_CHARS} characters.",
            None,
            param="id",
            code="invalid_message",
        )
    if kind == "cancel":
        return Incoming("cancel", request_id)
    endpoint = message.get("endpoint")
    if endpoint not in ENDPOINTS:
        raise ProtocolError(
            f"Unknown endpoint {endpoint!r}; the endpoints are {', '.join(ENDPOINTS)}.",
            request_id,
            param="endpoint",
            code="unknown_endpoint",
        )
    body = message.get("body")
    if not isinstance(body, dict):
        raise ProtocolError(
            "A 'request' message needs a 'body': the JSON object the endpoint takes over HTTP.",
            request_id,
            param="body",
            code="invalid_message",
        )
    return Incoming("request", request_id, endpoint, body)


def error_message(request_id: str | None, exc: GatewayError) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "error", "id": request_id}
    message.update(exc.to_dict())
    return message


def encode(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()
