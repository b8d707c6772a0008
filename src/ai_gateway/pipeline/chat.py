"""The chat completion pipeline: the one place that orders the stages.

    authenticate      (middleware: api/auth.py, before any body is read)
 -> validate          (api/chat.py: size limit, JSON, schema; pipeline/gate.py: request limits,
                       allowed models)
 -> rate-limit/budget (pipeline/gate.py -> security/admission.py)
 -> guardrails(in)    (pipeline/gate.py: content rules on the prompt)
 -> route             (routing/router.py: strategy, circuit breakers, context window,
                       retries, fallbacks, hedging; each attempt below)
 -> call provider     (adapter translates; transport errors become gateway errors)
 -> stream or respond (SSE relay: fail over until the first token, then an error event on a
                       mid-stream failure; or one JSON body)
 -> guardrails(out)   (pipeline/gate.py: the answer, or each chunk through a ChunkGuard)
 -> record usage      (metrics, usage record: tokens, cost, latency, time to first token)
 -> settle            (pipeline/gate.py: leases released, tokens and cost charged)

api/chat.py calls the stages in this order; this module runs the ones from "route" to "record
usage". A stage that is switched off costs nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING

from ai_gateway.errors import GatewayError, UpstreamError, UpstreamProtocolError
from ai_gateway.observability.genai import AttemptSpan
from ai_gateway.observability.logging import get_logger
from ai_gateway.observability.metrics import Metrics
from ai_gateway.observability.tracing import Tracing
from ai_gateway.pipeline.charges import Charges
from ai_gateway.providers.base import ChatRequest, EmbeddingsCall, JSONObject
from ai_gateway.providers.registry import ProviderRegistry
from ai_gateway.request_info import RequestInfo
from ai_gateway.routing.deployments import Deployment, DeploymentTable
from ai_gateway.routing.request import RouteRequest, Trace
from ai_gateway.routing.router import Router
from ai_gateway.schemas.chat import ChatCompletionRequest
from ai_gateway.streaming.sse import DONE, encode_data
from ai_gateway.usage.recorder import UsageRecorder
from ai_gateway.usage.records import Route

if TYPE_CHECKING:
    from ai_gateway.pipeline.gate import ChunkGuard

log = get_logger(__name__)


def _has_content(choices: list[JSONObject]) -> bool:
    """True when a chunk carries generated output (not just the role or a finish reason)."""
    for choice in choices:
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls") or delta.get("refusal"):
            return True
    return False


def _opens_the_answer(chunk: JSONObject) -> bool:
    """The first chunk worth committing to: output, a finish, or usage. Until then (e.g. a
    role-only chunk) nothing has reached the client and a failure can still fail over."""
    choices = chunk.get("choices") or []
    if _has_content(choices) or any(c.get("finish_reason") for c in choices):
        return True
    return not choices and bool(chunk.get("usage"))


@dataclass(slots=True)
class _OpenStream:
    deployment: Deployment
    head: list[JSONObject]  # chunks received before (and including) the first real one
    rest: AsyncGenerator[JSONObject, None] | None  # None when the upstream already finished
    started: float
    span: AttemptSpan | None = None  # the attempt's trace span, held open until the stream ends
    body: JSONObject | None = None  # what the attempt sent (to count the prompt if need be)


class ChatPipeline:
    def __init__(
        self,
        router: Router,
        providers: ProviderRegistry,
        metrics: Metrics,
        recorder: UsageRecorder,
        tracing: Tracing | None = None,
        deployments: DeploymentTable | None = None,
    ) -> None:
        """`deployments`: where a model name's deployments are looked up to price it (see
        pipeline/charges.py)."""
        self.charges = Charges(deployments, recorder)
        self._router = router
        self._providers = providers
        self._metrics = metrics
        self._recorder = recorder
        self._tracing = tracing

    # -- bookkeeping ---------------------------------------------------------------------------

    def _begin(self, model: str, info: RequestInfo) -> Trace:
        trace = Trace(requested=model)
        info.trace = trace
        return trace

    def _attempting(self, deployment: Deployment, info: RequestInfo) -> None:
        requested = info.trace.requested if info.trace is not None else deployment.group
        info.model = self._metrics.model_label(requested, configured=deployment.from_config)
        # Client-chosen `provider/<id>` models share the bound on label values.
        info.upstream_label = (
            deployment.model if deployment.from_config else info.model.partition("/")[2] or "other"
        )
        info.provider = deployment.provider
        info.deployment = deployment.id

    def _upstream_failed(
        self, deployment: Deployment, info: RequestInfo, exc: GatewayError
    ) -> None:
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

    def _recorded(
        self, info: RequestInfo, make: Callable[[Deployment, JSONObject], Awaitable[JSONObject]]
    ) -> Callable[[Deployment, JSONObject], Awaitable[JSONObject]]:
        """Wrap one non-streaming attempt with its labels, latency, usage and failure log."""

        async def attempt(deployment: Deployment, body: JSONObject) -> JSONObject:
            self.charges.check_attempt(deployment, info)
            self._attempting(deployment, info)
            started = perf_counter()
            try:
                result = await make(deployment, body)
            except UpstreamError as exc:
                self._upstream_failed(deployment, info, exc)
                raise
            self._metrics.upstream_seconds(
                deployment.provider, info.upstream_label, perf_counter() - started
            )
            self._metrics.observe_usage(info.model, deployment.provider, result.get("usage"))
            if self._tracing is not None:
                self._tracing.record_response(result)
            return result

        return attempt

    # -- entry points --------------------------------------------------------------------------

    async def complete(self, request: ChatRequest, info: RequestInfo) -> JSONObject:
        self.charges.check_request(request.parsed.model, info)
        trace = self._begin(request.parsed.model, info)

        async def chat(deployment: Deployment, body: JSONObject) -> JSONObject:
            return await self._providers.get(deployment.provider).chat(
                deployment, _with_body(request, body)
            )

        route = RouteRequest(
            model=request.parsed.model,
            body=request.body,
            call=self._recorded(info, chat),
            context_strategy=request.parsed.context_strategy,
            tokens_of=_total_tokens,
            reach=self.charges.reach(info),
        )
        # Awaited here rather than in a shared coroutine: one level less on every resume.
        try:
            result = await self._router.run(route, trace)
        except BaseException as exc:
            self._failed(info, "chat", exc)
            raise
        info.cost_usd = self._recorder.record(info, "chat", stream=False, usage=result.get("usage"))
        return result

    async def embeddings(self, request: EmbeddingsCall, info: RequestInfo) -> JSONObject:
        self.charges.check_request(request.parsed.model, info)
        trace = self._begin(request.parsed.model, info)

        async def embed(deployment: Deployment, body: JSONObject) -> JSONObject:
            return await self._providers.get(deployment.provider).embeddings(deployment, request)

        route = RouteRequest(
            model=request.parsed.model,
            body=request.body,
            call=self._recorded(info, embed),
            reach=self.charges.reach(info),
        )
        try:
            result = await self._router.run(route, trace)
        except BaseException as exc:
            self._failed(info, "embeddings", exc)
            raise
        info.cost_usd = self._recorder.record(
            info, "embeddings", stream=False, usage=result.get("usage")
        )
        return result

    def _failed(self, info: RequestInfo, kind: Route, exc: BaseException) -> None:
        """Record a non-streaming request that ended without an answer."""
        if isinstance(exc, GatewayError):
            self._recorder.record(info, kind, stream=False, error=exc)
        elif isinstance(exc, asyncio.CancelledError):
            self._recorder.record(
                info, kind, stream=False, status=499, error_type="client_disconnected"
            )

    async def open_stream(
        self, request: ChatRequest, info: RequestInfo, guard: ChunkGuard | None = None
    ) -> AsyncIterator[bytes]:
        """Open the upstream stream up to its first real chunk. Until then every failure is a
        normal HTTP error, retried and failed over by the router like any other. `guard`: the
        output content rules, applied to every chunk."""
        self.charges.check_request(request.parsed.model, info)
        trace = self._begin(request.parsed.model, info)

        async def open_one(deployment: Deployment, body: JSONObject) -> _OpenStream:
            self.charges.check_attempt(deployment, info)
            self._attempting(deployment, info)
            started = perf_counter()
            provider = self._providers.get(deployment.provider)
            chunks = provider.stream_chat(deployment, _with_body(request, body))
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
                        return _OpenStream(deployment, head, None, started, self._hold(), body)
                    head.append(chunk)
                    if _opens_the_answer(chunk):
                        return _OpenStream(deployment, head, chunks, started, self._hold(), body)
            except BaseException as exc:
                await chunks.aclose()
                if isinstance(exc, UpstreamError):
                    self._upstream_failed(deployment, info, exc)
                raise

        async def discard(opened: _OpenStream) -> None:
            if opened.span is not None:
                opened.span.finish(cancelled=True)  # a losing hedge or fan-out stream
            if opened.rest is not None:
                await opened.rest.aclose()

        route = RouteRequest(
            model=request.parsed.model,
            body=request.body,
            call=open_one,
            context_strategy=request.parsed.context_strategy,
            stream=True,
            discard=discard,
            reach=self.charges.reach(info),
        )
        try:
            opened = await self._router.run(route, trace)
        except GatewayError as exc:
            self._recorder.record(info, "chat", stream=True, error=exc)
            raise
        except asyncio.CancelledError:
            self._recorder.record(
                info, "chat", stream=True, status=499, error_type="client_disconnected"
            )
            raise
        self._attempting(opened.deployment, info)
        options = request.parsed.stream_options
        include_usage = bool(options and options.include_usage)
        relay = self._relay(opened, info, include_usage, guard)
        # Run the relay to its first (empty) yield. Python runs an async generator's `finally`
        # only once it has started: a stream closed before anyone read it (a client gone before
        # the body started, a losing fan-out branch) would otherwise keep its upstream response
        # open and never be recorded or charged. Started, it is cleaned up by `aclose()`, or by
        # the event loop when it is dropped.
        await anext(relay)
        return relay

    def _hold(self) -> AttemptSpan | None:
        return self._tracing.hold_attempt() if self._tracing is not None else None

    async def _relay(
        self,
        opened: _OpenStream,
        info: RequestInfo,
        include_usage: bool,
        guard: ChunkGuard | None = None,
    ) -> AsyncGenerator[bytes, None]:
        """The client's stream. Its first item is an empty priming value (see `open_stream`)."""
        deployment = opened.deployment
        first_token_seen = False
        final_usage: object = None
        failure: GatewayError | None = None
        ttft: float | None = None
        completed = False
        # Counts what is streamed, charged when no usage arrives (a client or upstream cut).
        tally = self._recorder.tally(info, deployment.provider, deployment.model, opened.body or {})
        try:
            yield b""  # the priming step: from here on, closing the relay runs its `finally`
            pending: list[JSONObject] = list(opened.head)
            while True:
                if pending:
                    chunk = pending.pop(0)
                elif opened.rest is not None:
                    next_chunk = await anext(opened.rest, None)
                    if next_chunk is None:
                        break
                    chunk = next_chunk
                else:
                    break
                if opened.span is not None:
                    opened.span.record_chunk(chunk)
                if tally is not None:
                    tally.feed(chunk)
                usage = chunk.get("usage") if include_usage else chunk.pop("usage", None)
                if usage:
                    final_usage = usage
                    self._metrics.observe_usage(info.model, deployment.provider, usage)
                if guard is not None:
                    guard.apply(chunk)
                choices = chunk.get("choices")
                if choices or include_usage:
                    if not first_token_seen and choices and _has_content(choices):
                        first_token_seen = True
                        ttft = perf_counter() - info.started
                        self._metrics.first_token_seconds(
                            deployment.provider, info.upstream_label, ttft
                        )
                    yield encode_data(chunk)
            if guard is not None:
                for tail in guard.tails():
                    yield encode_data(tail)
            completed = True
            yield DONE
        except GatewayError as exc:
            failure = exc
            self._metrics.observe_error("/chat/completions", exc.type, exc.code)
            if isinstance(exc, UpstreamError):
                self._upstream_failed(deployment, info, exc)
            await self._router.stream_failed(deployment, exc)  # the circuit breaker's count
            # The client already has a 200 and some chunks: tell it, never end silently.
            yield encode_data(exc.to_dict())
        finally:
            if opened.span is not None:
                opened.span.finish(failure, cancelled=not completed and failure is None)
            counted = not final_usage and tally is not None
            if counted and tally is not None:
                final_usage = tally.usage()
                self._metrics.observe_usage(info.model, deployment.provider, final_usage)
            self._recorder.record(
                info,
                "chat",
                stream=True,
                usage=final_usage,
                error=failure,
                status=200,
                error_type=None if completed or failure else "client_disconnected",
                ttft_s=ttft,
                estimated=counted,
            )
            self._metrics.upstream_seconds(
                deployment.provider, info.upstream_label, perf_counter() - opened.started
            )
            if opened.rest is not None:
                await opened.rest.aclose()


def _total_tokens(result: JSONObject) -> int | None:
    usage = result.get("usage")
    total = usage.get("total_tokens") if isinstance(usage, dict) else None
    return total if isinstance(total, int) else None


def _with_body(request: ChatRequest, body: JSONObject) -> ChatRequest:
    """The request as one attempt sends it: unchanged, or with the router's truncated prompt."""
    if body is request.body:
        return request
    return ChatRequest(body=body, parsed=ChatCompletionRequest.model_validate(body))
