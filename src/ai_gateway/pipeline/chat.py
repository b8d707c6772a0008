"""The chat completion pipeline: the one place that orders the stages.

    authenticate      (middleware: api/auth.py, before any body is read)
 -> validate          (api/chat.py: size limit, JSON, schema)
 -> route             (pick the deployment for the public model name)
 -> call provider     (adapter translates; transport errors become gateway errors)
 -> stream or respond (SSE relay with an error event on mid-stream failure, or one JSON body)
 -> record usage      (metrics: tokens, upstream latency, time to first token)

Later stages (rate limits, guardrails, cache, context building, retries and fallbacks) slot in here
in this order; a stage that is switched off is simply not in the list.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from time import perf_counter

from ai_gateway.errors import GatewayError, UpstreamError, UpstreamProtocolError
from ai_gateway.observability.logging import get_logger
from ai_gateway.observability.metrics import Metrics
from ai_gateway.pipeline.context import RequestInfo
from ai_gateway.providers.base import ChatRequest, EmbeddingsCall, JSONObject, Provider
from ai_gateway.providers.registry import ProviderRegistry
from ai_gateway.routing.deployments import Deployment, DeploymentTable
from ai_gateway.streaming.sse import DONE, encode_data

log = get_logger(__name__)


def _has_content(choices: list[JSONObject]) -> bool:
    """True when a chunk carries generated output (not just the role or a finish reason)."""
    for choice in choices:
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls") or delta.get("refusal"):
            return True
    return False


class ChatPipeline:
    def __init__(
        self, deployments: DeploymentTable, providers: ProviderRegistry, metrics: Metrics
    ) -> None:
        self._deployments = deployments
        self._providers = providers
        self._metrics = metrics

    # -- stages --------------------------------------------------------------------------------

    def _route(self, model: str, info: RequestInfo) -> tuple[Deployment, Provider]:
        deployment = self._deployments.resolve(model)[0]
        info.model = self._metrics.model_label(model, configured=deployment.from_config)
        # Client-chosen `provider/<id>` models share the bound on label values.
        info.upstream_label = (
            deployment.model if deployment.from_config else info.model.partition("/")[2] or "other"
        )
        info.provider = deployment.provider
        info.deployment = deployment.id
        return deployment, self._providers.get(deployment.provider)

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

    # -- entry points --------------------------------------------------------------------------

    async def complete(self, request: ChatRequest, info: RequestInfo) -> JSONObject:
        deployment, provider = self._route(request.parsed.model, info)
        return await self._answer(deployment, info, provider.chat(deployment, request))

    async def embeddings(self, request: EmbeddingsCall, info: RequestInfo) -> JSONObject:
        deployment, provider = self._route(request.parsed.model, info)
        return await self._answer(deployment, info, provider.embeddings(deployment, request))

    async def _answer(
        self, deployment: Deployment, info: RequestInfo, call: Awaitable[JSONObject]
    ) -> JSONObject:
        """Await one non-streaming upstream call and record its latency, usage or failure."""
        started = perf_counter()
        try:
            result = await call
        except UpstreamError as exc:
            self._upstream_failed(deployment, info, exc)
            raise
        self._metrics.upstream_seconds(
            deployment.provider, info.upstream_label, perf_counter() - started
        )
        self._metrics.observe_usage(info.model, deployment.provider, result.get("usage"))
        return result

    async def open_stream(self, request: ChatRequest, info: RequestInfo) -> AsyncIterator[bytes]:
        """Start the upstream stream; errors before its first chunk raise (a normal HTTP error)."""
        deployment, provider = self._route(request.parsed.model, info)
        started = perf_counter()
        chunks = provider.stream_chat(deployment, request)
        try:
            first = await anext(chunks)
        except StopAsyncIteration:
            await chunks.aclose()
            exc = UpstreamProtocolError(
                f"The upstream provider ({deployment.provider}, deployment '{deployment.id}') "
                "ended the stream before sending anything."
            )
            self._upstream_failed(deployment, info, exc)
            raise exc from None
        except UpstreamError as exc:
            await chunks.aclose()
            self._upstream_failed(deployment, info, exc)
            raise
        options = request.parsed.stream_options
        include_usage = bool(options and options.include_usage)
        return self._relay(first, chunks, deployment, info, started, include_usage)

    async def _relay(
        self,
        first: JSONObject,
        chunks: AsyncGenerator[JSONObject, None],
        deployment: Deployment,
        info: RequestInfo,
        started: float,
        include_usage: bool,
    ) -> AsyncIterator[bytes]:
        first_token_seen = False
        chunk: JSONObject | None = first
        try:
            while chunk is not None:
                usage = chunk.get("usage") if include_usage else chunk.pop("usage", None)
                if usage:
                    self._metrics.observe_usage(info.model, deployment.provider, usage)
                choices = chunk.get("choices")
                if choices or include_usage:
                    if not first_token_seen and choices and _has_content(choices):
                        first_token_seen = True
                        self._metrics.first_token_seconds(
                            deployment.provider, info.upstream_label, perf_counter() - info.started
                        )
                    yield encode_data(chunk)
                chunk = await anext(chunks, None)
            yield DONE
        except GatewayError as exc:
            if isinstance(exc, UpstreamError):
                self._upstream_failed(deployment, info, exc)
            # The client already has a 200 and some chunks: tell it, never end silently.
            yield encode_data(exc.to_dict())
        finally:
            self._metrics.upstream_seconds(
                deployment.provider, info.upstream_label, perf_counter() - started
            )
            await chunks.aclose()
