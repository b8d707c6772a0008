"""The analytics store's interface. Backends: SQLite (default) and PostgreSQL (DATABASE_URL)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, Protocol

from ai_gateway.usage.records import FeedbackRecord, UsageRecord

UsageGroup = Literal["model", "provider", "user", "key", "team", "day", "deployment"]
FeedbackGroup = Literal["model", "template", "day"]
RequestKey = Literal["request_id", "client_request_id"]  # the gateway's id, or the client's


class StoreUnavailableError(Exception):
    """The store could not be reached or refused the write; the caller keeps the data and
    retries."""


class AnalyticsStore(Protocol):
    async def start(self) -> None:
        """Connect and apply pending schema migrations."""
        ...

    async def aclose(self) -> None: ...

    async def write_usage(self, records: Sequence[UsageRecord]) -> None:
        """Insert a batch; a record whose request_id (the gateway's own, unique) exists is
        skipped, so a batch re-sent after a lost acknowledgement is stored once.
        Raises StoreUnavailableError when the batch was not written."""
        ...

    async def write_feedback(self, records: Sequence[FeedbackRecord]) -> None: ...

    async def has_request(self, request_id: str, *, user: str | None = None) -> bool:
        """Whether a usage record for `request_id` is stored; with `user`, one recorded for
        that user (the caller of the request)."""
        ...

    async def usage(
        self, start: datetime, end: datetime, group_by: UsageGroup
    ) -> list[dict[str, Any]]:
        """Per group: requests, errors, prompt/completion/cached/reasoning tokens, cost_usd (a
        decimal string), and the response cache's hits, lookups (the requests a hit rate is out
        of), hit rate, saved tokens and saved_cost_usd; ordered by group."""
        ...

    async def models(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Per served model and deployment: requests, error_rate, p50/p95 latency_ms, p50/p95
        ttft_ms, cost_usd, cost_per_1k_requests."""
        ...

    async def errors(self, start: datetime, end: datetime, limit: int) -> list[dict[str, Any]]:
        """Recent failed requests, newest first: request_id, created_at, model, provider,
        status, error_type, error_code (counts by type: `error_counts`)."""
        ...

    async def requests(
        self,
        start: datetime,
        end: datetime,
        key: RequestKey,
        value: str,
        limit: int,
    ) -> list[dict[str, Any]]:
        """The records whose `key` (the gateway's request id, or the client's) is `value`,
        newest first: ids, time, models, deployment, status, error, tokens, cost, whether the
        tokens were counted by the gateway (`usage_estimated`), latency, the caller, and the
        cache status with what a hit saved (tokens, cost)."""
        ...

    async def error_counts(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Failed requests by error type, most frequent first: [{error_type, count}]."""
        ...

    async def feedback(
        self, start: datetime, end: datetime, group_by: FeedbackGroup
    ) -> list[dict[str, Any]]:
        """Per group: count, mean score, positive/negative counts."""
        ...

    async def prompts(
        self, start: datetime, end: datetime, prompt_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Per prompt template version (of one template with `prompt_id`), ordered by id and
        version: requests, errors and error_rate, prompt/completion/total tokens, cost_usd,
        unpriced requests, mean/p50/p95 latency_ms, and the count and mean score of the
        feedback on those requests (`analytics_prompts`). Requests without a template are left
        out."""
        ...

    async def timeseries(
        self, start: datetime, end: datetime, bucket_s: int
    ) -> list[dict[str, Any]]:
        """Per time bucket and model: requests, errors, tokens, cost, p50/p95 latency, cache hits
        and lookups, saved tokens and cost (for the dashboard)."""
        ...

    async def schema_version(self) -> int:
        """The highest migration version the database has (a cheap read: readiness probes
        it). StoreUnavailableError when the store cannot answer."""
        ...

    async def purge(self, before: datetime) -> int:
        """Delete usage and feedback older than `before` (retention); returns rows deleted."""
        ...
