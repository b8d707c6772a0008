"""The small interface every provider adapter implements."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, Protocol

from ai_gateway.providers.native import NativeRequest
from ai_gateway.routing.deployments import Deployment
from ai_gateway.schemas.chat import ChatCompletionRequest
from ai_gateway.schemas.embeddings import EmbeddingsRequest

JSONObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A validated chat request: the client's JSON as sent, and its typed view. `native`: the
    request in a provider's own wire format, when the client spoke one (providers/native.py)."""

    body: JSONObject
    parsed: ChatCompletionRequest
    native: NativeRequest | None = None


@dataclass(frozen=True, slots=True)
class EmbeddingsCall:
    body: JSONObject
    parsed: EmbeddingsRequest


class Provider(Protocol):
    """One adapter per provider. Adapters only translate and map errors; they hold no routing,
    caching or server code. Failures are raised as `ai_gateway.errors.UpstreamError` subclasses.
    """

    name: str

    async def chat(self, deployment: Deployment, request: ChatRequest) -> JSONObject:
        """A complete OpenAI `chat.completion` object."""
        ...

    def stream_chat(
        self, deployment: Deployment, request: ChatRequest
    ) -> AsyncGenerator[JSONObject, None]:
        """OpenAI `chat.completion.chunk` objects, the usage chunk (empty `choices`) last.

        Ends normally only when the upstream stream completed; a truncated or failed stream
        raises. Closing the iterator early cancels the upstream request.
        """
        ...

    async def embeddings(self, deployment: Deployment, request: EmbeddingsCall) -> JSONObject:
        """An OpenAI embeddings list object."""
        ...

    async def aclose(self) -> None: ...
