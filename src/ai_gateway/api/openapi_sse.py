"""How GET /openapi.json describes a server-sent event stream.

Before OpenAPI 3.2 (which adds `itemSchema`), the `schema` of a `text/event-stream` media type
describes one event, not the stream's text: an object with the event's fields. Tools that read
the document (schemathesis, client generators) check each event of a response against it, so a
plain `{"type": "string"}` there made every streamed answer look non-conforming.
"""

from __future__ import annotations

from typing import Any

# The fields of one event as an SSE parser delivers them (WHATWG HTML, "server-sent events").
# `data` is the JSON object of the event (or `[DONE]`); the gateway sends `event` only for
# named events.
SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "data": {"type": "string"},
        "event": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
}


def sse_content(item_ref: str | None = None) -> dict[str, Any]:
    """The `text/event-stream` entry of a response's `content`; `item_ref` (a `$ref`) names
    the schema of each event's JSON `data`, as the vendor extension `x-item-schema`."""
    media: dict[str, Any] = {"schema": SSE_EVENT}
    if item_ref is not None:
        media["x-item-schema"] = {"$ref": item_ref}
    return {"text/event-stream": media}
