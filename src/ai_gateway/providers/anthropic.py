"""Anthropic Messages API: ``POST {api_base}/v1/messages``, JSON and SSE.

For a client of the Chat Completions API this adapter translates the request
(``anthropic_request``), the response (``anthropic_response``) and the event stream
(``anthropic_stream``); for every client it maps Anthropic's errors, ``{"type": "error",
"error": {"type", "message"}}``, through the shared status table (``providers.errors``; 529
is a 503 there).
Requests carry ``x-api-key`` and ``anthropic-version: 2023-06-01``. ``api_base`` is the host
without ``/v1`` (``https://api.anthropic.com``); a trailing ``/v1`` is tolerated.
Anthropic has no embeddings API: an embeddings request is a 400 saying so.
A client of the gateway's Messages API (``api/messages.py``) has its own body sent instead, with
its ``anthropic-version`` and ``anthropic-beta`` (``anthropic_native``); the answer carries
Anthropic's message, or each chunk the events that made it, under ``NATIVE_KEY``.
With ``prompt_caching`` (the config's ``cache.prompt_caching``), the request's stable prefix is
marked for Anthropic's prompt cache (``anthropic_caching``); None leaves requests unmarked.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping

import orjson

from ai_gateway.cache.config import PromptCaching
from ai_gateway.errors import GatewayError, InvalidRequestError, UpstreamProtocolError
from ai_gateway.model_registry import ModelRegistry
from ai_gateway.providers.anthropic_native import native_body, native_headers, native_of
from ai_gateway.providers.anthropic_request import (
    DEFAULT_MAX_TOKENS,
    MessagesCall,
    translate_request,
)
from ai_gateway.providers.anthropic_response import to_chat_completion
from ai_gateway.providers.anthropic_stream import StreamTranslator
from ai_gateway.providers.base import ChatRequest, EmbeddingsCall, JSONObject
from ai_gateway.providers.errors import upstream_error
from ai_gateway.providers.http import UpstreamHTTP
from ai_gateway.providers.native import NATIVE_KEY
from ai_gateway.routing.deployments import Deployment
from ai_gateway.streaming.sse import SSEDecoder

ANTHROPIC_VERSION = "2023-06-01"


def anthropic_error_message(body: bytes) -> str | None:
    """The human-readable message of an Anthropic error body (or of any text body)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", errors="replace").strip()
        return text[:500] or None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        message = error.get("message") or error.get("type")
        return str(message) if message else None
    if isinstance(error, str):
        return error
    return None


def map_anthropic_error(
    deployment: Deployment, status: int, body: bytes, headers: Mapping[str, str]
) -> GatewayError:
    return upstream_error(deployment, status, anthropic_error_message(body), headers)


def _event_data(data: str, where: str) -> JSONObject | None:
    """A native stream's event, parsed (None: an event without data, which is skipped)."""
    if not data:
        return None
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise UpstreamProtocolError(
            f"The upstream provider ({where}) sent a stream event that is not a JSON object."
        )
    return parsed


def messages_url(api_base: str) -> str:
    base = api_base.rstrip("/")
    return f"{base.removesuffix('/v1')}/v1/messages"


class AnthropicProvider:
    name = "anthropic"

    def __init__(
        self,
        http: UpstreamHTTP,
        models: ModelRegistry,
        prompt_caching: PromptCaching | None = None,
    ) -> None:
        self._http = http
        self._models = models
        self._prompt_caching = prompt_caching

    @staticmethod
    def _where(deployment: Deployment) -> str:
        return f"anthropic, deployment '{deployment.id}'"

    @staticmethod
    def _headers(deployment: Deployment, *, stream: bool) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream" if stream else "application/json",
            "anthropic-version": ANTHROPIC_VERSION,
        }
        if deployment.api_key:
            headers["x-api-key"] = deployment.api_key
        return headers

    def _translate(self, deployment: Deployment, request: ChatRequest) -> MessagesCall:
        info = self._models.get("anthropic", deployment.model)
        default = info.max_output_tokens if info and info.max_output_tokens else None
        return translate_request(
            request, deployment.model, default or DEFAULT_MAX_TOKENS, self._prompt_caching
        )

    async def chat(self, deployment: Deployment, request: ChatRequest) -> JSONObject:
        native = native_of(request)
        if native is not None:
            data = await self._http.request_json(
                deployment,
                "POST",
                messages_url(deployment.api_base),
                self._headers(deployment, stream=False) | native_headers(native, ANTHROPIC_VERSION),
                orjson.dumps(native_body(native, request, deployment.model)),
                map_anthropic_error,
            )
            where = self._where(deployment)
            completion = to_chat_completion(data, None, where, reasoning=True)
            completion[NATIVE_KEY] = data  # relayed as it came by the Messages API's renderer
            return completion
        call = self._translate(deployment, request)
        data = await self._http.request_json(
            deployment,
            "POST",
            messages_url(deployment.api_base),
            self._headers(deployment, stream=False),
            orjson.dumps(call.body),
            map_anthropic_error,
        )
        return to_chat_completion(data, call.response_tool, self._where(deployment))

    async def stream_chat(
        self, deployment: Deployment, request: ChatRequest
    ) -> AsyncGenerator[JSONObject, None]:
        native = native_of(request)
        headers = self._headers(deployment, stream=True)
        if native is not None:
            body = native_body(native, request, deployment.model)
            headers |= native_headers(native, ANTHROPIC_VERSION)
            response_tool = None
        else:
            call = self._translate(deployment, request)
            body, response_tool = call.body, call.response_tool
        where = self._where(deployment)
        secrets = (deployment.api_key,)
        translator = StreamTranslator(where, response_tool, secrets, reasoning=native is not None)
        events: list[JSONObject] = []  # a native stream's events since its last chunk
        async with self._http.stream(
            deployment,
            messages_url(deployment.api_base),
            headers,
            orjson.dumps({**body, "stream": True}),
            map_anthropic_error,
        ) as stream:
            decoder = SSEDecoder()
            async for raw in stream:
                for event in decoder.feed(raw):
                    if native is None:
                        for chunk in translator.feed(event):
                            yield chunk
                        continue
                    data = _event_data(event.data, where)
                    if data is None:
                        continue
                    chunks = translator.feed_data(data, event.event)
                    events.append(data)
                    if chunks:
                        # Each chunk carries the events that made it (and those before it that
                        # made none), for the Messages API's renderer to relay as they came.
                        chunks[0][NATIVE_KEY] = events
                        events = []
                    for chunk in chunks:
                        yield chunk
        if events and translator.finished:
            yield {"object": "chat.completion.chunk", "choices": [], NATIVE_KEY: events}
        # Reading on to the end after message_stop keeps the connection reusable.
        if not translator.finished:
            raise UpstreamProtocolError(
                f"The upstream provider ({where}) ended the stream without finishing it "
                "(no message_stop)."
            )

    async def embeddings(self, deployment: Deployment, request: EmbeddingsCall) -> JSONObject:
        raise InvalidRequestError(
            f"The model '{request.parsed.model}' is served by Anthropic, which has no "
            "embeddings API; use an OpenAI or Gemini embedding model.",
            param="model",
        )

    async def aclose(self) -> None:
        await self._http.aclose()
