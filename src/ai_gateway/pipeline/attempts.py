"""One upstream attempt, instrumented: the one place that wraps the provider call with metrics,
the attempt's trace span and the failure log. The router decides which deployment each attempt
calls (routing/router.py); the adapter translates (providers/); this wraps the call between them:

- the request's labels for metrics and logs (`info.model`, `provider`, `deployment`);
- the attempt's client span when tracing is on (current during the call, so the upstream
  request carries its `traceparent`; a stream's is held open until the stream ends);
- latency per deployment (ok or error; a stream's attempt ends at its first token), upstream
  latency per provider and model, time to first token, the tokens the provider reported;
- an upstream failure: counted by provider and code, and logged with its detail.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from time import perf_counter
from typing import Any, TypeVar

from ai_gateway.errors import GatewayError, UpstreamError, UpstreamProtocolError
from ai_gateway.observability.genai import AttemptSpan
from ai_gateway.observability.logging import get_logger
from ai_gateway.observability.metrics import Metrics
from ai_gateway.observability.tracing import Tracing
from ai_gateway.providers.base import ChatRequest, EmbeddingsCall, JSONObject
from ai_gateway.providers.registry import ProviderRegistry
from ai_gateway.request_info import RequestInfo
from ai_gateway.routing.deployments import Deployment

T = TypeVar("T")
log = get_logger(__name__)
# Told of each attempt that ended with an answer or an upstream error: the deployment, its
# duration in seconds, and whether it succeeded (notifications: error spikes, latency).
AttemptWatch = Callable[[Deployment, float, bool], None]


def has_content(choices: list[JSONObject]) -> bool:
    """True when a chunk carries generated output (not just the role or a finish reason)."""
    for choice in choices:
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls") or delta.get("refusal"):
            return True
    return False


def opens_the_answer(chunk: JSONObject) -> bool:
    """The first chunk worth committing to: output, a finish, or usage. Until then (e.g. a
    role-only chunk) nothing has reached the client and a failure can still fail over."""
    choices = chunk.get("choices") or []
    if has_content(choices) or any(c.get("finish_reason") for c in choices):
        return True
    return not choices and bool(chunk.get("usage"))


@dataclass(slots=True)
class OpenStream:
    """A stream opened up to its first real chunk: what the relay reads, and what the
    instrumentation needs until it ends."""

    deployment: Deployment
    head: list[JSONObject]  # chunks received before (and including) the first real one
    rest: AsyncGenerator[JSONObject, None] | None  # None when the upstream already finished
    body: JSONObject  # what the attempt sent (to count the prompt if need be)
    info: RequestInfo
    metrics: Metrics
    started: float
    span: AttemptSpan | None = None  # held open until the stream ends
    ttft_s: float | None = None

    def observe(self, chunk: JSONObject) -> None:
        """One chunk relayed to the client."""
        if self.span is not None:
            self.span.record_chunk(chunk)
        usage = chunk.get("usage")
        if usage:
            self.metrics.observe_usage(self.info.model, self.deployment.provider, usage)
        if self.ttft_s is None:
            choices = chunk.get("choices")
            if choices and has_content(choices):
                self.ttft_s = perf_counter() - self.info.started
                self.metrics.first_token_seconds(
                    self.deployment.provider, self.info.upstream_label, self.ttft_s
                )

    async def close(self, failure: GatewayError | None = None, *, completed: bool) -> None:
        """The stream ended: `completed`, or failed with `failure`, or was closed before its
        end (the client left, or it lost a race)."""
        if self.span is not None:
            self.span.finish(failure, cancelled=not completed and failure is None)
        self.metrics.upstream_seconds(
            self.deployment.provider, self.info.upstream_label, perf_counter() - self.started
        )
        if self.rest is not None:
            await self.rest.aclose()


class Attempts:
    def __init__(
        self,
        providers: ProviderRegistry,
        metrics: Metrics,
        tracing: Tracing | None,
        on_attempt: AttemptWatch | None = None,
    ) -> None:
        self._on_attempt = on_attempt
        self._providers = providers
        self._metrics = metrics
        self._tracing = tracing

    def label(self, deployment: Deployment, info: RequestInfo) -> None:
        """The request's labels for metrics and logs: those of `deployment`."""
        requested = info.trace.requested if info.trace is not None else deployment.group
        info.model = self._metrics.model_label(requested, configured=deployment.from_config)
        # Client-chosen `provider/<id>` models share the bound on label values.
        info.upstream_label = (
            deployment.model if deployment.from_config else info.model.partition("/")[2] or "other"
        )
        info.provider = deployment.provider
        info.deployment = deployment.id

    async def chat(
        self, deployment: Deployment, request: ChatRequest, info: RequestInfo
    ) -> JSONObject:
        provider = self._providers.get(deployment.provider)
        return await self._answer(
            deployment, request.body, info, lambda: provider.chat(deployment, request)
        )

    async def embeddings(
        self, deployment: Deployment, request: EmbeddingsCall, info: RequestInfo
    ) -> JSONObject:
        provider = self._providers.get(deployment.provider)
        return await self._answer(
            deployment, request.body, info, lambda: provider.embeddings(deployment, request)
        )

    async def open_stream(
        self, deployment: Deployment, request: ChatRequest, info: RequestInfo
    ) -> OpenStream:
        """Open the upstream stream up to its first real chunk; until then a failure is a
        normal error, which the router may retry and fail over."""
        chunks = self._providers.get(deployment.provider).stream_chat(deployment, request)
        started = perf_counter()

        async def first_chunks() -> OpenStream:
            head: list[JSONObject] = []
            try:
                while True:
                    chunk = await anext(chunks, None)
                    if chunk is None:
                        if not head:
                            raise UpstreamProtocolError(
                                f"The upstream provider ({deployment.provider}, deployment "
                                f"'{deployment.id}') ended the stream before sending anything."
                            )
                        rest = None
                        break
                    head.append(chunk)
                    if opens_the_answer(chunk):
                        rest = chunks
                        break
            except BaseException:
                await chunks.aclose()
                raise
            span = self._tracing.hold_attempt() if self._tracing is not None else None
            return OpenStream(
                deployment, head, rest, request.body, info, self._metrics, started, span
            )

        return await self._run(deployment, request.body, info, first_chunks)

    async def _answer(
        self,
        deployment: Deployment,
        body: JSONObject,
        info: RequestInfo,
        call: Callable[[], Awaitable[JSONObject]],
    ) -> JSONObject:
        started = perf_counter()

        async def answer() -> JSONObject:
            result = await call()
            if self._tracing is not None:
                self._tracing.record_response(result)  # the span is still current
            return result

        result = await self._run(deployment, body, info, answer)
        self._metrics.upstream_seconds(
            deployment.provider, info.upstream_label, perf_counter() - started
        )
        self._metrics.observe_usage(info.model, deployment.provider, result.get("usage"))
        return result

    async def _run(
        self,
        deployment: Deployment,
        body: JSONObject,
        info: RequestInfo,
        call: Callable[[], Awaitable[T]],
    ) -> T:
        """`call()` as one attempt on `deployment`: labels, span, latency, failure."""
        self.label(deployment, info)
        started = perf_counter()
        ok = upstream_failed = False
        try:
            with self._span(deployment, body, info):
                result = await call()
            ok = True
            return result
        except UpstreamError as exc:
            upstream_failed = True
            self.failed(deployment, info, exc)
            raise
        finally:
            seconds = perf_counter() - started
            self._metrics.deployment_seconds(deployment, seconds, ok)
            if self._on_attempt is not None and (ok or upstream_failed):
                self._on_attempt(deployment, seconds, ok)

    def _span(
        self, deployment: Deployment, body: JSONObject, info: RequestInfo
    ) -> AbstractContextManager[Any]:
        if self._tracing is None:
            return nullcontext()
        number = info.trace.attempts if info.trace is not None else 1
        return self._tracing.attempt(deployment, body, number)

    def failed(self, deployment: Deployment, info: RequestInfo, exc: UpstreamError) -> None:
        """Count and log an upstream failure (before or during a stream)."""
        self._metrics.upstream_errors.labels(deployment.provider, exc.code or exc.type).inc()
        log.warning(
            "upstream_error",
            request_id=info.request_id,
            deployment=deployment.id,
            provider=deployment.provider,
            upstream_model=deployment.model,
            status=exc.status,
            code=exc.code,
            error=exc.message,
            detail=exc.internal_detail,
        )
