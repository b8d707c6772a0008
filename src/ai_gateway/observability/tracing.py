"""OpenTelemetry tracing: a server span per request and a client span per upstream attempt.

Configured by the standard variables. Tracing is on when `OTEL_TRACES_EXPORTER` names an
exporter (`otlp`, `console`), or else when `OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set; it is off otherwise, with
`OTEL_TRACES_EXPORTER=none`, or with `OTEL_SDK_DISABLED=true`. The OTLP exporter speaks
http/protobuf and reads its own variables (endpoint, headers, timeout, compression); the
service name is `OTEL_SERVICE_NAME`, default `ai-gateway`; spans leave through a
BatchSpanProcessor, flushed at shutdown.

Off costs nothing: `tracing_from_env()` returns None, OpenTelemetry is never imported, and each
place that could trace (middleware, router attempt, upstream HTTP client, pipeline) checks
`tracing is None` once.

Spans follow the HTTP and GenAI semantic conventions. Prompt and completion text are recorded
(as `gen_ai.content.prompt` / `gen_ai.content.completion` events, truncated) only when the
gateway's `trace_content` setting is on. Secrets never reach a span: attributes are fixed
fields, and error descriptions are the client-visible messages, scrubbed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from ai_gateway import __version__
from ai_gateway.observability.genai import AttemptSpan, Upstream, attempt_attributes
from ai_gateway.observability.logging import get_logger
from ai_gateway.settings import ConfigError

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, TracerProvider
    from starlette.types import Scope

    from ai_gateway.settings import GatewaySettings

DEFAULT_SERVICE_NAME = "ai-gateway"
EXPORTERS = ("otlp", "console")
CONTENT_LIMIT = 4096  # characters of prompt or completion text kept in a span event
SHUTDOWN_TIMEOUT_S = 5.0  # how long shutdown waits for the last spans to be exported

log = get_logger(__name__)


def exporters_from_env(env: Mapping[str, str]) -> tuple[str, ...]:
    """Which span exporters the OTEL_* variables ask for; empty when tracing is off."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return ()
    named = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",")]
    named = [n for n in named if n]
    if named:
        if "none" in named:
            return ()
        unknown = [n for n in named if n not in EXPORTERS]
        if unknown:
            raise ConfigError(
                f"OTEL_TRACES_EXPORTER: {', '.join(unknown)} is not supported; use otlp, "
                "console or none"
            )
        return tuple(dict.fromkeys(named))
    if env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return ("otlp",)
    return ()


def _check_protocol(env: Mapping[str, str]) -> None:
    for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        value = env.get(name, "").strip()
        if value:
            if value != "http/protobuf":
                raise ConfigError(
                    f"{name}={value} is not supported: the gateway exports spans over OTLP "
                    "http/protobuf (point it at the collector's HTTP port, usually 4318)"
                )
            return


def tracing_from_env(
    settings: GatewaySettings, env: Mapping[str, str] | None = None
) -> Tracing | None:
    """The gateway's tracing as the environment configures it, or None when it is off (then
    nothing of OpenTelemetry is imported). Called by create_app, never at import time."""
    env = os.environ if env is None else env
    exporters = exporters_from_env(env)
    if not exporters:
        return None
    _check_protocol(env)
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider as SDKTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES itself.
    resource = Resource.create({"service.version": __version__})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    provider = SDKTracerProvider(resource=resource)
    for name in exporters:
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        else:
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    return Tracing(provider, trace_content=settings.trace_content, owns_provider=True)


class _Attempts(Protocol):
    @property
    def attempts(self) -> int: ...


class RequestFacts(Protocol):
    """What the server span records of a finished request (the `RequestInfo` the middleware
    holds; described here so that observability does not import the layers above it)."""

    @property
    def model(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def deployment(self) -> str: ...
    @property
    def trace(self) -> _Attempts | None: ...
    @property
    def prompt_id(self) -> str | None: ...
    @property
    def prompt_version(self) -> int | None: ...


class RequestSpan:
    """The server span of one request, current while the request is served."""

    __slots__ = ("_context", "_span", "_token")

    def __init__(self, span: Span, token: object, context_api: Any) -> None:
        self._span = span
        self._token = token
        self._context = context_api

    def end(self, status: int, info: RequestFacts, error: tuple[str, str] | None) -> None:
        span = self._span
        try:
            span.set_attribute("http.response.status_code", status)
            if info.model:
                span.set_attribute("ai_gateway.model", info.model)
            if info.provider:
                span.set_attribute("ai_gateway.provider", info.provider)
            if info.deployment:
                span.set_attribute("ai_gateway.deployment", info.deployment)
            if info.trace is not None:
                span.set_attribute("ai_gateway.attempts", info.trace.attempts)
            if info.prompt_id is not None and info.prompt_version is not None:
                span.set_attribute("ai_gateway.prompt.id", info.prompt_id)
                span.set_attribute("ai_gateway.prompt.version", info.prompt_version)
            if error is not None:
                span.set_attribute("ai_gateway.error.type", error[0])
                if error[1]:
                    span.set_attribute("ai_gateway.error.code", error[1])
            if status >= 500:  # a server span's 4xx is the client's doing, not a failure
                from opentelemetry.trace import Status, StatusCode

                span.set_attribute("error.type", str(status))
                span.set_status(Status(StatusCode.ERROR))
        finally:
            span.end()
            self._context.detach(self._token)


class Tracing:
    """The gateway's tracer. Built once by create_app (from the environment, or by a test with
    its own TracerProvider and an in-memory exporter) and handed to the middleware, the router
    and the upstream HTTP clients. Only exists when tracing is on."""

    def __init__(
        self,
        provider: TracerProvider,
        *,
        trace_content: bool = False,
        content_limit: int = CONTENT_LIMIT,
        owns_provider: bool = False,
    ) -> None:
        from opentelemetry import context as context_api
        from opentelemetry import trace as trace_api
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._provider = provider
        self._owns_provider = owns_provider
        self._tracer = provider.get_tracer("ai_gateway", __version__)
        self._context = context_api
        self._trace = trace_api
        self._server_kind = trace_api.SpanKind.SERVER
        self._client_kind = trace_api.SpanKind.CLIENT
        self._propagator = TraceContextTextMapPropagator()  # W3C traceparent / tracestate
        self._attempt_key = context_api.create_key("ai_gateway.attempt")
        self._servers: dict[str, tuple[str | None, int | None]] = {}
        self.trace_content = trace_content
        self.content_limit = content_limit

    # -- the request (middleware) ----------------------------------------------------------------

    def start_request(self, scope: Scope, route: str | None, request_id: str) -> RequestSpan:
        """Open the server span, a child of the caller's `traceparent` when it sent one, and
        make it current for everything the request does."""
        carrier: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name == b"traceparent" or name == b"tracestate":
                carrier[name.decode()] = value.decode("latin-1")
        parent: Context | None = self._propagator.extract(carrier) if carrier else None
        method = scope["method"]
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.path": scope["path"],
            "url.scheme": scope.get("scheme", "http"),
            "ai_gateway.request_id": request_id,
        }
        if route is not None:
            attributes["http.route"] = route
        client = scope.get("client")
        if client:
            attributes["client.address"] = client[0]
        span = self._tracer.start_span(
            f"{method} {route}" if route else method,
            context=parent,
            kind=self._server_kind,
            attributes=attributes,
        )
        token = self._context.attach(self._trace.set_span_in_context(span, parent))
        return RequestSpan(span, token, self._context)

    # -- one upstream attempt (router) ---------------------------------------------------------

    @contextmanager
    def attempt(
        self, deployment: Upstream, body: Mapping[str, Any], number: int
    ) -> Iterator[AttemptSpan]:
        """The client span of one upstream attempt, current while it runs (so the upstream
        request carries its `traceparent`). Ends with the attempt, or, for a stream the
        pipeline holds (`hold_attempt`), when the pipeline finishes it."""
        operation = "chat" if "messages" in body else "embeddings"
        attributes = attempt_attributes(operation, deployment, body, number)
        host, port = self._server_of(deployment.api_base)
        if host:
            attributes["server.address"] = host
            if port:
                attributes["server.port"] = port
        span = self._tracer.start_span(
            f"{operation} {deployment.model}", kind=self._client_kind, attributes=attributes
        )
        handle = AttemptSpan(span, deployment.api_key, self.content_limit, self.trace_content)
        if self.trace_content:
            handle.record_prompt(body)
        context = self._context.set_value(
            self._attempt_key, handle, self._trace.set_span_in_context(span)
        )
        token = self._context.attach(context)
        try:
            yield handle
        except asyncio.CancelledError:
            handle.cancelled()  # a hedge or fan-out loser, or the client went away
            handle.finish()  # even when held: nobody will get the stream
            raise
        except BaseException as exc:
            handle.failed(exc)
            handle.finish()
            raise
        else:
            if not handle.held:
                handle.finish()
        finally:
            self._context.detach(token)

    def _server_of(self, api_base: str) -> tuple[str | None, int | None]:
        server = self._servers.get(api_base)
        if server is None:
            try:
                parts = urlsplit(api_base)
                server = (parts.hostname, parts.port)
            except ValueError:
                server = (None, None)
            self._servers[api_base] = server
        return server

    # -- what the pipeline adds --------------------------------------------------------------------

    def current_attempt(self) -> AttemptSpan | None:
        """The attempt span of the running upstream attempt, if any."""
        handle = self._context.get_value(self._attempt_key)
        return handle if isinstance(handle, AttemptSpan) else None

    def record_response(self, result: Mapping[str, Any]) -> None:
        """Add a non-streaming answer (chat completion or embeddings list) to the current
        attempt span: response model and id, usage, finish reasons (and, with trace_content,
        the completion)."""
        handle = self.current_attempt()
        if handle is not None:
            handle.record_response(result)

    def hold_attempt(self) -> AttemptSpan | None:
        """For a stream: keep the current attempt span open after the router's attempt (which
        ends at the first token) until the pipeline calls `finish()` on it, after feeding it
        the chunks with `record_chunk()`."""
        handle = self.current_attempt()
        if handle is not None:
            handle.held = True
        return handle

    # -- the upstream request (UpstreamHTTP) -------------------------------------------------------

    def inject(self, headers: Mapping[str, str]) -> dict[str, str]:
        """`headers` plus the current span's `traceparent` (and `tracestate`)."""
        carrier = dict(headers)
        self._propagator.inject(carrier)
        return carrier

    # -- lifecycle -----------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Flush and stop the exporters (only those this object built)."""
        if self._owns_provider:
            shutdown = getattr(self._provider, "shutdown", None)
            if callable(shutdown):
                shutdown()

    async def aclose(self, timeout_s: float = SHUTDOWN_TIMEOUT_S) -> None:
        """`shutdown()` off the event loop, waiting at most `timeout_s`: an unreachable
        collector makes the exporter retry for its own timeout, and the gateway's shutdown
        should not wait for that. Spans not flushed by then are lost (and logged)."""
        if not self._owns_provider:
            return
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        def flush() -> None:
            try:
                self.shutdown()
            finally:
                with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                    loop.call_soon_threadsafe(done.set)

        # A daemon thread, so that a flush still waiting cannot hold up the process's exit.
        threading.Thread(target=flush, name="tracing-shutdown", daemon=True).start()
        try:
            await asyncio.wait_for(done.wait(), timeout_s)
        except TimeoutError:
            log.warning("tracing_flush_incomplete", waited_s=timeout_s)
