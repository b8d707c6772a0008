"""Google Gemini API (``generativelanguage.googleapis.com``, ``v1beta``).

The client speaks OpenAI; this adapter sends

- chat: ``POST {api_base}/v1beta/models/{model}:generateContent``,
- streamed chat: ``...:streamGenerateContent?alt=sse`` (server-sent events),
- embeddings: ``...:batchEmbedContents``,

with the gateway's key in the ``x-goog-api-key`` header, never in the URL (URLs end up in logs).
``api_base`` is the host without the version (a trailing ``/v1beta`` is tolerated). The
translations live beside this module: `gemini_request` (request), `gemini_response`
(answer), `gemini_stream` (stream), `gemini_embeddings` and `gemini_errors`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing
from urllib.parse import quote

import orjson

from ai_gateway.model_registry import ModelRegistry
from ai_gateway.providers import gemini_embeddings as emb
from ai_gateway.providers.base import ChatRequest, EmbeddingsCall, JSONObject
from ai_gateway.providers.embedding_format import embeddings_response
from ai_gateway.providers.gemini_errors import map_gemini_error
from ai_gateway.providers.gemini_request import build_request
from ai_gateway.providers.gemini_response import completion
from ai_gateway.providers.gemini_stream import translate_sse
from ai_gateway.providers.http import UpstreamHTTP
from ai_gateway.routing.deployments import Deployment
from ai_gateway.usage.tokens import TokenCounter


def model_id(deployment: Deployment) -> str:
    """The upstream model id without Google's ``models/`` resource prefix."""
    return deployment.model.removeprefix("models/")


def method_url(deployment: Deployment, method: str) -> str:
    base = deployment.api_base.rstrip("/").removesuffix("/v1beta")
    # Quoted: with `gemini/<id>` model names the id comes from the client.
    return f"{base}/v1beta/models/{quote(model_id(deployment), safe='')}:{method}"


class GeminiProvider:
    name = "gemini"

    def __init__(
        self, http: UpstreamHTTP, models: ModelRegistry, counter: TokenCounter | None = None
    ) -> None:
        self._http = http
        # Kept for model-aware behaviour (limits, capabilities); the translation needs none yet.
        self._models = models
        # Gemini's embedding responses carry no usage: the gateway counts (an estimate).
        self._counter = counter or TokenCounter()

    @staticmethod
    def _headers(deployment: Deployment, accept: str = "application/json") -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": accept}
        if deployment.api_key:
            headers["x-goog-api-key"] = deployment.api_key
        return headers

    async def chat(self, deployment: Deployment, request: ChatRequest) -> JSONObject:
        payload = orjson.dumps(build_request(request.parsed))
        data = await self._http.request_json(
            deployment,
            "POST",
            method_url(deployment, "generateContent"),
            self._headers(deployment),
            payload,
            map_gemini_error,
        )
        return completion(deployment, data)

    async def stream_chat(
        self, deployment: Deployment, request: ChatRequest
    ) -> AsyncGenerator[JSONObject, None]:
        payload = orjson.dumps(build_request(request.parsed))
        url = method_url(deployment, "streamGenerateContent") + "?alt=sse"
        headers = self._headers(deployment, "text/event-stream")
        async with (
            self._http.stream(deployment, url, headers, payload, map_gemini_error) as body,
            aclosing(translate_sse(deployment, body)) as chunks,
        ):
            async for chunk in chunks:
                yield chunk

    async def embeddings(self, deployment: Deployment, request: EmbeddingsCall) -> JSONObject:
        inputs = emb.texts(request.parsed)
        url = method_url(deployment, "batchEmbedContents")
        headers = self._headers(deployment)
        bodies = emb.batches(model_id(deployment), inputs, request.parsed.dimensions)

        parallel = asyncio.Semaphore(emb.PARALLEL_BATCHES)

        async def one(body: JSONObject) -> list[list[float]]:
            async with parallel:
                data = await self._http.request_json(
                    deployment, "POST", url, headers, orjson.dumps(body), map_gemini_error
                )
            return emb.vectors(deployment, data, len(body["requests"]))

        if len(bodies) == 1:
            vectors = await one(bodies[0])
        else:
            tasks = [asyncio.ensure_future(one(body)) for body in bodies]
            try:
                results = await asyncio.gather(*tasks)
            except BaseException:  # one batch failed (or the client left): stop the others
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
            vectors = [vector for batch in results for vector in batch]
        return embeddings_response(
            model_id(deployment),
            vectors,
            request.parsed.encoding_format,
            self._counter.count_text("gemini", deployment.model, inputs).tokens,
        )

    async def aclose(self) -> None:
        await self._http.aclose()
