"""GenAI semantic-convention attributes for upstream attempt spans.

Values per the OpenTelemetry GenAI conventions: `gen_ai.operation.name` is `chat` or
`embeddings`; the provider goes in `gen_ai.system` and in its successor `gen_ai.provider.name`
(`openai`, `anthropic`, `gcp.gemini`; other providers by their gateway name). Nothing here
imports OpenTelemetry: these objects only exist when tracing is on, and the one import they
need (span status) happens on the failure path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from ai_gateway.errors import GatewayError
from ai_gateway.redaction import scrub

if TYPE_CHECKING:
    from opentelemetry.trace import Span

GEN_AI_SYSTEMS = {"openai": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini"}


class Upstream(Protocol):
    """What a span says about the deployment an attempt goes to. Routing's `Deployment` is one;
    it is described here so that observability, a lower layer, does not import routing."""

    @property
    def id(self) -> str: ...
    @property
    def group(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def api_base(self) -> str: ...
    @property
    def api_key(self) -> str | None: ...


_REQUEST_PARAMS = (
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
)


def attempt_attributes(
    operation: str, deployment: Upstream, body: Mapping[str, Any], number: int
) -> dict[str, Any]:
    """The attributes an attempt span starts with: what is asked of which upstream."""
    system = GEN_AI_SYSTEMS.get(deployment.provider, deployment.provider)
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.system": system,
        "gen_ai.provider.name": system,
        "gen_ai.request.model": deployment.model,
        "ai_gateway.deployment": deployment.id,
        "ai_gateway.model": deployment.group,
        "ai_gateway.attempt": number,
    }
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
        attributes["gen_ai.request.max_tokens"] = max_tokens
    for field, name in _REQUEST_PARAMS:
        value = body.get(field)
        if isinstance(value, int | float) and not isinstance(value, bool):
            attributes[name] = float(value)
    return attributes


def _text(value: object, limit: int, secrets: tuple[str | None, ...]) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return scrub(text[:limit], secrets)


class AttemptSpan:
    """One attempt's client span, and what the pipeline learns about the answer."""

    __slots__ = (
        "_completion",
        "_completion_size",
        "_ended",
        "_finish_reasons",
        "_limit",
        "_secrets",
        "_span",
        "content",
        "held",
    )

    def __init__(self, span: Span, api_key: str | None, limit: int, content: bool) -> None:
        self._span = span
        self._secrets = (api_key,)
        self._limit = limit
        self.content = content  # record prompt and completion text (trace_content)
        self.held = False  # a stream's span, ended by the pipeline rather than the router
        self._ended = False
        self._finish_reasons: list[str] = []
        self._completion: list[str] = []
        self._completion_size = 0

    @property
    def span(self) -> Span:
        return self._span

    # -- the answer --------------------------------------------------------------------------

    def record_response(self, result: Mapping[str, Any]) -> None:
        """A whole answer: a chat completion or an embeddings list."""
        self._response_fields(result)
        choices = result.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if not isinstance(choice, dict):
                    continue
                reason = choice.get("finish_reason")
                if isinstance(reason, str):
                    self._finish_reasons.append(reason)
                if self.content:
                    message = choice.get("message")
                    if isinstance(message, dict) and message.get("content"):
                        self._add_completion(str(message["content"]))

    def record_chunk(self, chunk: Mapping[str, Any]) -> None:
        """One chunk of a stream (call it before removing anything from the chunk)."""
        if self._ended:
            return
        self._response_fields(chunk)
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            reason = choice.get("finish_reason")
            if isinstance(reason, str):
                self._finish_reasons.append(reason)
            if self.content:
                delta = choice.get("delta")
                if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                    self._add_completion(delta["content"])

    def _add_completion(self, text: str) -> None:
        if self._completion_size < self._limit:
            self._completion.append(text)
            self._completion_size += len(text)

    def _response_fields(self, result: Mapping[str, Any]) -> None:
        span = self._span
        model = result.get("model")
        if isinstance(model, str) and model:
            span.set_attribute("gen_ai.response.model", model)
        response_id = result.get("id")
        if isinstance(response_id, str) and response_id:
            span.set_attribute("gen_ai.response.id", response_id)
        usage = result.get("usage")
        if isinstance(usage, dict):
            prompt = usage.get("prompt_tokens")
            completion = usage.get("completion_tokens")
            if isinstance(prompt, int):
                span.set_attribute("gen_ai.usage.input_tokens", prompt)
            if isinstance(completion, int):
                span.set_attribute("gen_ai.usage.output_tokens", completion)

    def record_prompt(self, body: Mapping[str, Any]) -> None:
        prompt = body.get("messages") if "messages" in body else body.get("input")
        self._span.add_event(
            "gen_ai.content.prompt", {"gen_ai.prompt": _text(prompt, self._limit, self._secrets)}
        )

    # -- the end ---------------------------------------------------------------------------------

    def cancelled(self) -> None:
        self._span.set_attribute("ai_gateway.cancelled", True)

    def failed(self, exc: BaseException) -> None:
        """Mark the span failed: `error.type` is the gateway error's code (or type), and the
        description the message the client would see, scrubbed once more."""
        from opentelemetry.trace import Status, StatusCode

        if isinstance(exc, GatewayError):
            kind = exc.code or exc.type
            description = scrub(exc.message, self._secrets)[:1000]
            self._span.set_attribute("ai_gateway.error.status", exc.status)
        else:
            kind = type(exc).__qualname__
            description = kind
        self._span.set_attribute("error.type", kind)
        self._span.set_status(Status(StatusCode.ERROR, description))

    def finish(self, error: BaseException | None = None, *, cancelled: bool = False) -> None:
        """End the span (once; later calls do nothing). For a held stream: `error` when it
        failed after its first token, `cancelled` when the client left (or a hedge or fan-out
        loser was discarded) before its end."""
        if self._ended:
            return
        self._ended = True
        if error is not None:
            if isinstance(error, asyncio.CancelledError | GeneratorExit):
                self.cancelled()
            else:
                self.failed(error)
        elif cancelled:
            self.cancelled()
        span = self._span
        if self._finish_reasons:
            span.set_attribute("gen_ai.response.finish_reasons", tuple(self._finish_reasons))
        if self._completion:
            text = "".join(self._completion)
            span.add_event(
                "gen_ai.content.completion",
                {"gen_ai.completion": _text(text, self._limit, self._secrets)},
            )
        span.end()
