"""The gateway's view of its context sources: ask the DevMentor services in parallel under one
time budget, each behind its own circuit breaker, and fail open.

`ContextSources.fetch()` never raises (other than its own cancellation): a source that times
out, cannot be reached, answers badly or whose circuit is open is left out, and the result's
`statuses` say which sources were used and why the others were not; `result.header()` renders
them for the `x-gateway-context` response header (`memory=ok, project=timeout, learning=ok`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ai_gateway.integrations.breaker import BreakerState, SourceBreaker
from ai_gateway.integrations.clients import LearningClient, MemoryClient, ProjectClient
from ai_gateway.integrations.config import IntegrationsConfig
from ai_gateway.integrations.contracts import (
    LearnerProfile,
    MemorySearchRequest,
    MemorySearchResponse,
    ProjectContextRequest,
    ProjectContextResponse,
    StoreExchangeRequest,
)
from ai_gateway.integrations.http import ServiceHTTP
from ai_gateway.integrations.reasons import HEALTHY, Reason, SourceError
from ai_gateway.observability.logging import get_logger

SourceName = Literal["memory", "project", "learning"]
SOURCES: tuple[SourceName, ...] = ("memory", "project", "learning")


class ContextQuery(BaseModel):
    """What one request asks of its sources. The Project service is asked only when the request
    names a project."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_id: str = Field(min_length=1, max_length=256)
    query: str
    project_id: str | None = Field(default=None, min_length=1, max_length=256)

    @field_validator("user_id", "project_id")
    @classmethod
    def _not_dots(cls, value: str | None) -> str | None:
        # Ids go into URL paths, where "." and ".." would name another path.
        if value is not None and value.strip(".") == "":
            raise ValueError("must not be only dots")
        return value


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """What became of one source: `reason` is `ok` when it was used. `detail` is for logs."""

    source: SourceName
    reason: Reason
    elapsed_s: float = 0.0
    detail: str = ""

    @property
    def used(self) -> bool:
        return self.reason is Reason.OK


def render_context_header(statuses: Iterable[SourceStatus]) -> str:
    """`memory=ok, project=timeout, learning=ok`, in the order given; empty when none."""
    return ", ".join(f"{s.source}={s.reason.value}" for s in statuses)


@dataclass(frozen=True, slots=True)
class ContextResult:
    """The answers of the sources that were used (None for the others) and the status of every
    source that was asked, in the order memory, project, learning."""

    memory: MemorySearchResponse | None = None
    project: ProjectContextResponse | None = None
    learning: LearnerProfile | None = None
    statuses: tuple[SourceStatus, ...] = field(default=())

    def status(self, source: SourceName) -> SourceStatus | None:
        return next((s for s in self.statuses if s.source == source), None)

    @property
    def used(self) -> tuple[SourceName, ...]:
        return tuple(s.source for s in self.statuses if s.used)

    @property
    def failed(self) -> tuple[SourceStatus, ...]:
        return tuple(s for s in self.statuses if not s.used)

    def header(self) -> str:
        return render_context_header(self.statuses)


class ContextSources:
    """The three clients, a breaker per source and the overall budget. One per app; call
    `aclose()` at shutdown."""

    def __init__(
        self,
        config: IntegrationsConfig,
        http: ServiceHTTP,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._http = http
        self._clock = clock
        self._log = get_logger(__name__)
        self.memory = MemoryClient(http, config.memory)
        self.project = ProjectClient(http, config.project)
        self.learning = LearningClient(http, config.learning)
        self.breakers: dict[SourceName, SourceBreaker] = {
            name: SourceBreaker(
                config.breaker,
                clock=clock,
                probe_timeout_s=max(config.store_timeout_s, config.budget_s) * 2,
                on_change=self._breaker_logger(name),
            )
            for name in SOURCES
        }
        self._enabled = {
            "memory": config.memory.enabled,
            "project": config.project.enabled,
            "learning": config.learning.enabled,
        }

    def wanted(
        self, query: ContextQuery, sources: Collection[SourceName] | None = None
    ) -> tuple[SourceName, ...]:
        """The sources `fetch()` asks: those requested (default all) that are enabled and that
        the query can ask (project needs a project id)."""
        return tuple(
            name
            for name in SOURCES
            if (sources is None or name in sources)
            and self._enabled[name]
            and (name != "project" or query.project_id is not None)
        )

    async def fetch(
        self, query: ContextQuery, sources: Collection[SourceName] | None = None
    ) -> ContextResult:
        """Ask the wanted sources at once; wait at most `budget_s` for all of them together."""
        statuses: dict[SourceName, SourceStatus] = {}
        tasks: dict[SourceName, asyncio.Task[Any]] = {}
        elapsed: dict[SourceName, float] = {}
        started = self._clock()
        for name in self.wanted(query, sources):
            if self.breakers[name].allows():
                task = tasks[name] = asyncio.create_task(self._ask(name, query))
                task.add_done_callback(self._stopwatch(name, started, elapsed))
            else:
                statuses[name] = SourceStatus(name, Reason.CIRCUIT_OPEN)
        values: dict[SourceName, Any] = {}
        if tasks:
            await self._wait(tasks)
            for name, task in tasks.items():
                took = elapsed.get(name, self._clock() - started)
                status, value = self._outcome(name, task, took)
                statuses[name] = status
                if value is not None:
                    values[name] = value
        ordered = tuple(statuses[name] for name in SOURCES if name in statuses)
        return ContextResult(
            memory=values.get("memory"),
            project=values.get("project"),
            learning=values.get("learning"),
            statuses=ordered,
        )

    async def store_exchange(self, request: StoreExchangeRequest) -> SourceStatus | None:
        """Give a finished exchange to the Memory service (within `store_timeout_s`, behind the
        memory breaker); None when the memory source is disabled. Never raises but for
        cancellation: run it off the client's path."""
        breaker = self.breakers["memory"]
        if not self._enabled["memory"]:
            return None
        if not breaker.allows():
            return SourceStatus("memory", Reason.CIRCUIT_OPEN)
        started = self._clock()
        try:
            await self.memory.store_exchange(request, timeout_s=self._config.store_timeout_s)
        except asyncio.CancelledError:
            breaker.release_probe()
            raise
        except SourceError as exc:
            status = SourceStatus("memory", exc.reason, self._clock() - started, exc.detail)
        else:
            status = SourceStatus("memory", Reason.OK, self._clock() - started)
        self._record(status, "store_exchange")
        return status

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- internals -------------------------------------------------------------------------------

    async def _wait(self, tasks: dict[SourceName, asyncio.Task[Any]]) -> None:
        """Wait for the tasks until the budget runs out; cancel those still running."""
        try:
            await asyncio.wait(tasks.values(), timeout=self._config.budget_s)
        except asyncio.CancelledError:  # the request is gone: no outcome to record
            for name, task in tasks.items():
                task.cancel()
                self.breakers[name].release_probe()
            raise
        late = [task for task in tasks.values() if not task.done()]
        for task in late:
            task.cancel()
        if late:  # let them release their connections before answering
            await asyncio.gather(*late, return_exceptions=True)

    def _stopwatch(
        self, name: SourceName, started: float, elapsed: dict[SourceName, float]
    ) -> Callable[[asyncio.Task[Any]], None]:
        def stop(task: asyncio.Task[Any]) -> None:
            elapsed[name] = self._clock() - started
            if not task.cancelled():
                task.exception()  # seen, also when the request was cancelled mid-fetch

        return stop

    async def _ask(self, name: SourceName, query: ContextQuery) -> Any:
        """One source's call. The clock starts when the task runs."""
        if name == "memory":
            return await self.memory.search(
                MemorySearchRequest(
                    user_id=query.user_id, query=query.query, limit=self._config.memory_limit
                )
            )
        if name == "project":
            assert query.project_id is not None  # wanted() asks it only with one
            request = ProjectContextRequest(
                user_id=query.user_id, query=query.query, limit=self._config.snippet_limit
            )
            return await self.project.context(query.project_id, request)
        return await self.learning.profile(query.user_id)

    def _outcome(
        self, name: SourceName, task: asyncio.Task[Any], elapsed_s: float
    ) -> tuple[SourceStatus, Any]:
        if task.cancelled():
            status = SourceStatus(name, Reason.TIMEOUT, elapsed_s, "overall budget")
            value = None
        elif isinstance(error := task.exception(), SourceError):
            status = SourceStatus(name, error.reason, elapsed_s, error.detail)
            value = None
        elif error is not None:  # a bug in a client: fail open, but say so loudly
            self._log.error("context_source_bug", source=name, error=type(error).__name__)
            status = SourceStatus(name, Reason.BAD_RESPONSE, elapsed_s, type(error).__name__)
            value = None
        else:
            status = SourceStatus(name, Reason.OK, elapsed_s)
            value = task.result()
        self._record(status, "fetch")
        return status, value

    def _record(self, status: SourceStatus, operation: str) -> None:
        breaker = self.breakers[status.source]
        if status.reason in HEALTHY:
            breaker.record_success()
            return
        breaker.record_failure()
        self._log.info(
            "context_source_failed",
            source=status.source,
            operation=operation,
            reason=status.reason.value,
            detail=status.detail,
            elapsed_ms=round(status.elapsed_s * 1000, 1),
        )

    def _breaker_logger(self, name: SourceName) -> Callable[[BreakerState], None]:
        def log(state: BreakerState) -> None:
            emit = self._log.warning if state is BreakerState.OPEN else self._log.info
            emit("context_source_circuit", source=name, state=state.value)

        return log


def build_context_sources(
    config: IntegrationsConfig, *, clock: Callable[[], float] = time.monotonic
) -> ContextSources:
    """The sources as configured, over one shared HTTP session (opened on first use)."""
    http = ServiceHTTP(
        connect_timeout_s=config.connect_timeout_s,
        max_connections=config.max_connections,
        token=config.token.get_secret_value() if config.token is not None else None,
    )
    return ContextSources(config, http, clock=clock)
