"""OpenAI Chat Completions and Embeddings: the gateway's own shapes, so mostly a pass-through.

Works for any OpenAI-compatible server (vLLM, Ollama, LM Studio) given its `api_base`.
Unknown request fields are forwarded unchanged; only `model` is replaced with the upstream id.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Any

import orjson

from ai_gateway.errors import (
    ContentFilteredError,
    GatewayError,
    UpstreamError,
    UpstreamProtocolError,
)
from ai_gateway.providers.base import ChatRequest, EmbeddingsCall, JSONObject
from ai_gateway.providers.errors import upstream_error
from ai_gateway.providers.http import UpstreamHTTP
from ai_gateway.redaction import scrub
from ai_gateway.routing.deployments import Deployment
from ai_gateway.streaming.sse import SSEDecoder

# Codes OpenAI and Azure OpenAI use when a safety system refused the prompt.
_CONTENT_POLICY_CODES = frozenset({"content_filter", "content_policy_violation"})


def _error_fields(body: bytes) -> tuple[str | None, str | None, str | None]:
    """(message, param, code) from an OpenAI-style error body, tolerating other shapes."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", errors="replace").strip()
        return (text[:500] or None), None, None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            msg, param, code = err.get("message"), err.get("param"), err.get("code")
            return (
                str(msg) if msg is not None else None,
                param if isinstance(param, str) else None,
                code if isinstance(code, str) else None,
            )
        if isinstance(err, str):
            return err, None, None
        if isinstance(data.get("detail"), str):  # FastAPI-style servers
            return str(data["detail"]), None, None
    return None, None, None


def map_openai_error(
    deployment: Deployment, status: int, body: bytes, headers: Mapping[str, str]
) -> GatewayError:
    message, param, code = _error_fields(body)
    if status == 400 and code in _CONTENT_POLICY_CODES:
        return ContentFilteredError(
            f"The upstream provider ({deployment.provider}, deployment '{deployment.id}') "
            f"refused the request on content-policy grounds: "
            f"{scrub(message or '', (deployment.api_key,))}"
        )
    return upstream_error(deployment, status, message, headers, param=param)


class OpenAIProvider:
    name = "openai"

    def __init__(self, http: UpstreamHTTP) -> None:
        self._http = http

    @staticmethod
    def _headers(deployment: Deployment) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if deployment.api_key:
            headers["Authorization"] = f"Bearer {deployment.api_key}"
        return headers

    @staticmethod
    def _payload(deployment: Deployment, body: JSONObject, **changes: Any) -> bytes:
        if body.get("model") != deployment.model or changes:
            body = {**body, "model": deployment.model, **changes}
        return orjson.dumps(body)

    async def chat(self, deployment: Deployment, request: ChatRequest) -> JSONObject:
        payload = self._payload(deployment, request.body)
        data = await self._http.request_json(
            deployment,
            "POST",
            f"{deployment.api_base}/chat/completions",
            self._headers(deployment),
            payload,
            map_openai_error,
        )
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise UpstreamProtocolError(
                f"The upstream provider (openai, deployment '{deployment.id}') answered with "
                "something that is not a chat completion."
            )
        return data

    async def stream_chat(
        self, deployment: Deployment, request: ChatRequest
    ) -> AsyncGenerator[JSONObject, None]:
        # Always ask for usage, so every stream is accounted; the pipeline drops the usage chunk
        # again when the client did not ask for it.
        options = {**(request.body.get("stream_options") or {}), "include_usage": True}
        payload = self._payload(deployment, request.body, stream=True, stream_options=options)
        headers = {**self._headers(deployment), "Accept": "text/event-stream"}
        url = f"{deployment.api_base}/chat/completions"
        async with self._http.stream(deployment, url, headers, payload, map_openai_error) as body:
            decoder = SSEDecoder()
            async for raw in body:
                for event in decoder.feed(raw):
                    if event.data == "[DONE]":
                        return
                    yield self._parse_chunk(deployment, event.data)
        raise UpstreamProtocolError(
            f"The upstream provider (openai, deployment '{deployment.id}') ended the stream "
            "without finishing it (no [DONE])."
        )

    @staticmethod
    def _parse_chunk(deployment: Deployment, data: str) -> JSONObject:
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamProtocolError(
                f"The upstream provider (openai, deployment '{deployment.id}') sent a stream "
                "event that is not JSON."
            ) from None
        if not isinstance(chunk, dict):
            raise UpstreamProtocolError(
                f"The upstream provider (openai, deployment '{deployment.id}') sent a stream "
                "event that is not a JSON object."
            )
        error = chunk.get("error")
        if error:
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise UpstreamError(
                f"The upstream provider (openai, deployment '{deployment.id}') failed mid-stream: "
                f"{scrub(str(message), (deployment.api_key,))}"
            )
        return chunk

    async def embeddings(self, deployment: Deployment, request: EmbeddingsCall) -> JSONObject:
        payload = self._payload(deployment, request.body)
        data = await self._http.request_json(
            deployment,
            "POST",
            f"{deployment.api_base}/embeddings",
            self._headers(deployment),
            payload,
            map_openai_error,
        )
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise UpstreamProtocolError(
                f"The upstream provider (openai, deployment '{deployment.id}') answered with "
                "something that is not an embeddings list."
            )
        return data

    async def aclose(self) -> None:
        await self._http.aclose()
