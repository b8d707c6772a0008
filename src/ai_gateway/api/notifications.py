"""The notifications admin API (docs/notifications.md):

    GET  /admin/notifications          this instance's recent deliveries, newest first, with
                                       their outcome; and its counters (queued, dropped, ...)
    POST /admin/notifications/test     a `test` event sent once through every configured
                                       channel (or {"channel": "<name>"}), bypassing rules and
                                       deduplication; answers each delivery's outcome

The history is in memory, per instance (a ring buffer of `notifications.history` entries): the
instance that delivered an event lists it.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ai_gateway.api.common import BodyLimit, JSONResponse, read_body
from ai_gateway.errors import InvalidRequestError, NotFoundError
from ai_gateway.notify.events import sample_event
from ai_gateway.notify.sender import Notifier


class NotificationsAPI:
    def __init__(self, notifier: Notifier | None, body: BodyLimit) -> None:
        self._notifier = notifier
        self._body = body.at_most(16 * 1024)

    async def list(self, request: Request) -> Response:
        notifier = self._notifier
        if notifier is None:
            return JSONResponse({"object": "list", "enabled": False, "data": []})
        return JSONResponse(
            {
                "object": "list",
                "enabled": True,
                "scope": "instance",
                "stats": notifier.stats(),
                "data": [delivery.as_json() for delivery in notifier.deliveries()],
            }
        )

    async def test(self, request: Request) -> Response:
        notifier = self._notifier
        if notifier is None or not notifier.channels:
            raise InvalidRequestError(
                "Notifications are not configured: add channels and rules under "
                "notifications: in the config file (docs/notifications.md).",
                code="notifications_off",
            )
        raw = await read_body(request, self._body)
        try:
            fields = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError:
            raise InvalidRequestError("The request body is not valid JSON.") from None
        if not isinstance(fields, dict):
            raise InvalidRequestError("The request body must be a JSON object.")
        channel = fields.get("channel")
        message = fields.get("message", "it works")
        if not isinstance(message, str) or len(message) > 1000:
            raise InvalidRequestError(
                "message must be a string of at most 1000 characters.", param="message"
            )
        channels = notifier.channels
        if channel is not None:
            if channel not in channels:
                raise NotFoundError(
                    f"No notification channel {channel!r}; configured: "
                    f"{', '.join(sorted(channels))}.",
                    code="channel_not_found",
                )
            chosen = [channels[channel]]
        else:
            chosen = list(channels.values())
        event = sample_event(message)
        deliveries = [await notifier.send(c, event, retry=False) for c in chosen]
        return JSONResponse(
            {"object": "list", "event_id": event.id, "data": [d.as_json() for d in deliveries]}
        )
