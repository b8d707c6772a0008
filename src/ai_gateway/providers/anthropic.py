"""Anthropic Messages API: ``POST {api_base}/v1/messages``, JSON and SSE.

The client speaks OpenAI Chat Completions only; this adapter translates the request
(``anthropic_request``), the response (``anthropic_response``) and the event stream
(``anthropic_stream``), and maps Anthropic's errors, ``{"type": "error", "error": {"type",
"message"}}``, through the shared status table (``providers.errors``; 529 is a 503 there).
Requests carry ``x-api-key`` and ``anthropic-version: 2023-06-01``. ``api_base`` is the host
without ``/v1`` (``https://api.anthropic.com``); a trailing ``/v1`` is tolerated.
Anthropic has no embeddings API: an embeddings request is a 400 saying so.
With ``prompt_caching`` (the config's ``cache.prompt_caching``), the request's stable prefix is
marked for Anthropic's prompt cache (``anthropic_caching``); None leaves requests unmarked.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping

import orjson

from ai_gateway.cache.config import PromptCaching
from ai_gateway.errors import GatewayError, InvalidRequestError, UpstreamProtocolError
from ai_gateway.model_registry import ModelRegistry
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
        call = self._translate(deployment, request)
        payload = orjson.dumps({**call.body, "stream": True})
        where = self._where(deployment)
        translator = StreamTranslator(where, call.response_tool, (deployment.api_key,))
        async with self._http.stream(
            deployment,
            messages_url(deployment.api_base),
            self._headers(deployment, stream=True),
            payload,
            map_anthropic_error,
        ) as body:
            decoder = SSEDecoder()
            async for raw in body:
                for event in decoder.feed(raw):
                    for chunk in translator.feed(event):
                        yield chunk
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
