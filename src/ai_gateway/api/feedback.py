"""POST /ai/feedback: a score (and optional comment and tags) for a request the gateway served.

The request must be known: recorded in the analytics store, or still waiting in this instance's
writer. Feedback is submitted through the background writer like usage records, so a store that
is briefly down does not lose it; the 201 answer is the record as it will be stored.

With authentication on, a caller may rate only its own requests: those recorded for its user
(any of the user's virtual keys or JWTs). The master key may rate any request. A request of
someone else gets the same 404 as an unknown id, so the answer never tells whether an id exists.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response

from ai_gateway.api.analytics import AnalyticsUnavailableError
from ai_gateway.api.analytics_query import iso
from ai_gateway.api.common import BodyLimit, JSONResponse, read_json
from ai_gateway.errors import NotFoundError
from ai_gateway.request_info import RequestInfo
from ai_gateway.schemas.analytics import FeedbackRequest, normalise_score
from ai_gateway.schemas.validation import parse_body
from ai_gateway.security.principal import Principal
from ai_gateway.stores.analytics import AnalyticsStore, StoreUnavailableError
from ai_gateway.usage.records import FeedbackRecord

# A feedback body is small: a 4000-character comment and 20 tags, even fully escaped, fit.
FEEDBACK_BODY_LIMIT = 64 * 1024


class FeedbackSink(Protocol):
    def submit_feedback(self, record: FeedbackRecord) -> None: ...

    def pending(self, request_id: str, *, user: str | None = None) -> bool:
        """Whether a usage record for `request_id` (with `user`: recorded for that user) is
        waiting to be written."""
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
    def __init__(self, store: AnalyticsStore, writer: FeedbackSink, limit: BodyLimit) -> None:
        self._store = store
        self._writer = writer
        self._limit = limit.at_most(FEEDBACK_BODY_LIMIT)

    async def _known(self, request_id: str, principal: Principal | None) -> bool:
        """Whether `request_id` is recorded and the caller may rate it."""
        user = None
        if principal is not None and not principal.admin:
            if principal.user is None:  # a credential without a user owns no request
                return False
            user = principal.user
        if self._writer.pending(request_id, user=user):
            return True
        try:
            return await self._store.has_request(request_id, user=user)
        except StoreUnavailableError:
            raise AnalyticsUnavailableError(
                "The analytics store is unavailable, so the request id cannot be checked; "
                "send the feedback again shortly."
            ) from None

    async def create(self, request: Request) -> Response:
        parsed = parse_body(FeedbackRequest, await read_json(request, self._limit))
        principal = RequestInfo.from_scope(request.scope).principal
        if not await self._known(parsed.request_id, principal):
            raise NotFoundError(
                f"No request with id {parsed.request_id!r} is recorded for this caller: use the "
                "x-gateway-request-id header of a chat or embeddings response to one of your "
                "requests (a client's own x-request-id may repeat, so it does not name one).",
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
