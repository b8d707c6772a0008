"""One small client per DevMentor service (docs/integrations.md has their contracts).

Each method is one HTTP call with that service's own timeout, and returns the contract's typed
answer or raises `SourceError`. No retries: the caller's budget is too short for them, and the
breaker (in `sources.py`) is what stops calling a service that keeps failing.
"""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ValidationError

from ai_gateway.integrations.config import ServiceConfig
from ai_gateway.integrations.contracts import (
    LearnerProfile,
    MemorySearchRequest,
    MemorySearchResponse,
    ProjectContextRequest,
    ProjectContextResponse,
    StoreExchangeRequest,
    StoreExchangeResponse,
)
from ai_gateway.integrations.http import ServiceHTTP
from ai_gateway.integrations.reasons import Reason, SourceError

M = TypeVar("M", bound=BaseModel)


def _segment(value: str) -> str:
    """One path segment: an id can never reach another path."""
    return quote(value, safe="")


def parse(model: type[M], data: Any) -> M:
    """The contract's model of `data`, or SourceError(bad_response) naming the first field that
    does not fit (its location only: values can be users' data)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise SourceError(Reason.BAD_RESPONSE, f"{where}: {first['type']}") from None


class _Client:
    def __init__(self, http: ServiceHTTP, config: ServiceConfig) -> None:
        self._http = http
        self._base = config.url
        self.timeout_s = config.timeout_s


class MemoryClient(_Client):
    """The Memory service (default http://127.0.0.1:3003)."""

    async def search(self, request: MemorySearchRequest) -> MemorySearchResponse:
        data = await self._http.request_json(
            "POST",
            f"{self._base}/v1/memories/search",
            payload=request.model_dump(mode="json"),
            timeout_s=self.timeout_s,
        )
        return parse(MemorySearchResponse, data)

    async def store_exchange(
        self, request: StoreExchangeRequest, *, timeout_s: float
    ) -> StoreExchangeResponse:
        data = await self._http.request_json(
            "POST",
            f"{self._base}/v1/exchanges",
            payload=request.model_dump(mode="json"),
            timeout_s=timeout_s,
        )
        return parse(StoreExchangeResponse, data)


class ProjectClient(_Client):
    """The Project service (default http://127.0.0.1:3004)."""

    async def context(
        self, project_id: str, request: ProjectContextRequest
    ) -> ProjectContextResponse:
        data = await self._http.request_json(
            "POST",
            f"{self._base}/v1/projects/{_segment(project_id)}/context",
            payload=request.model_dump(mode="json"),
            timeout_s=self.timeout_s,
        )
        return parse(ProjectContextResponse, data)


class LearningClient(_Client):
    """The Learning engine (default http://127.0.0.1:3005)."""

    async def profile(self, user_id: str) -> LearnerProfile:
        data = await self._http.request_json(
            "GET",
            f"{self._base}/v1/learners/{_segment(user_id)}/profile",
            timeout_s=self.timeout_s,
        )
        return parse(LearnerProfile, data)
