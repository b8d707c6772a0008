"""POST /ai/feedback: a score (and optional comment and tags) for a request the gateway served.

The request must be known: recorded in the analytics store, or still waiting in this instance's
writer. Feedback is submitted through the background writer like usage records, so a store that
is briefly down does not lose it; the 201 answer is the record as it will be stored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response

from ai_gateway.api.analytics import AnalyticsUnavailableError
from ai_gateway.api.analytics_query import iso
from ai_gateway.api.common import JSONResponse, read_json
from ai_gateway.errors import NotFoundError
from ai_gateway.schemas.analytics import FeedbackRequest, normalise_score
from ai_gateway.schemas.validation import parse_body
from ai_gateway.stores.analytics import AnalyticsStore, StoreUnavailableError
from ai_gateway.usage.records import FeedbackRecord

# A feedback body is small: a 4000-character comment and 20 tags, even fully escaped, fit.
FEEDBACK_BODY_LIMIT = 64 * 1024


class FeedbackSink(Protocol):
    def submit_feedback(self, record: FeedbackRecord) -> None: ...

    def pending(self, request_id: str) -> bool:
        """Whether a usage record for `request_id` is waiting to be written."""
        ...


def feedback_json(record: FeedbackRecord) -> dict[str, Any]:
    return {
        "object": "feedback",
        "request_id": record.request_id,
        "created_at": iso(record.created_at),
        "score": record.score,
        "raw_score": record.raw_score,
        "comment": record.comment,
        "tags": list(record.tags),
    }


class FeedbackAPI:
    def __init__(self, store: AnalyticsStore, writer: FeedbackSink, limit: int) -> None:
        self._store = store
        self._writer = writer
        self._limit = min(limit, FEEDBACK_BODY_LIMIT)

    async def _known(self, request_id: str) -> bool:
        if self._writer.pending(request_id):
            return True
        try:
            return await self._store.has_request(request_id)
        except StoreUnavailableError:
            raise AnalyticsUnavailableError(
                "The analytics store is unavailable, so the request id cannot be checked; "
                "send the feedback again shortly."
            ) from None

    async def create(self, request: Request) -> Response:
        parsed = parse_body(FeedbackRequest, await read_json(request, self._limit))
        if not await self._known(parsed.request_id):
            raise NotFoundError(
                f"No request with id {parsed.request_id!r} is recorded: use the "
                "x-gateway-request-id header of a chat or embeddings response from this "
                "gateway (a client's own x-request-id may repeat, so it does not name one "
                "request).",
                param="request_id",
                code="request_not_found",
            )
        score, raw = normalise_score(parsed.score)
        record = FeedbackRecord(
            request_id=parsed.request_id,
            created_at=datetime.now(UTC),
            score=score,
            raw_score=raw,
            comment=parsed.comment,
            tags=tuple(parsed.tags),
        )
        self._writer.submit_feedback(record)
        return JSONResponse(feedback_json(record), status_code=201)
