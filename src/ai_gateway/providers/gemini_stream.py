"""``streamGenerateContent?alt=sse`` events as OpenAI ``chat.completion.chunk`` objects.

Each SSE ``data:`` event is a whole ``GenerateContentResponse`` carrying the next piece of each
candidate (Gemini sends no ``[DONE]``; a stream is complete when every candidate has its
``finishReason``). Per event, at most two chunks come out, at once (nothing is held back):

1. the deltas: the first delta of each choice has ``role: assistant``; text as it arrives;
   ``functionCall`` parts as ``tool_calls`` deltas (``index`` counting from 0 across the
   choice's whole stream, the id, the name and the full arguments in one delta);
2. the finish: ``delta: {}`` and the ``finish_reason`` of each candidate that finished.

When the body ends, `finish` gives the usage chunk (``choices: []``) from the last
``usageMetadata`` seen, or raises `UpstreamProtocolError` when a candidate never finished.
An ``{"error": ...}`` event raises the mapped `UpstreamError`; a prompt refused on safety grounds
(the first event has ``promptFeedback.blockReason`` and no candidates) raises
`ContentFilteredError` before any chunk exists. Every chunk has the same id, created and model.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

import orjson

from ai_gateway.errors import UpstreamProtocolError
from ai_gateway.providers.base import JSONObject
from ai_gateway.providers.gemini_errors import error_from_payload
from ai_gateway.providers.gemini_response import (
    candidate_parts,
    candidates,
    completion_id,
    finish_reason,
    model_name,
    raise_if_prompt_blocked,
    usage,
)
from ai_gateway.routing.deployments import Deployment
from ai_gateway.streaming.sse import SSEDecoder


def parse_event(deployment: Deployment, data: str) -> Mapping[str, Any]:
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamProtocolError(
            f"The upstream provider (gemini, deployment '{deployment.id}') sent a stream event "
            "that is not JSON."
        ) from None
    if not isinstance(event, dict):
        raise UpstreamProtocolError(
            f"The upstream provider (gemini, deployment '{deployment.id}') sent a stream event "
            "that is not a JSON object."
        )
    return event


class StreamTranslator:
    """Turns one stream's events into chunks. One instance per stream; no I/O."""

    __slots__ = ("_calls", "_created", "_deployment", "_finished", "_id", "_model", "_usage")

    def __init__(self, deployment: Deployment) -> None:
        self._deployment = deployment
        self._id: str | None = None
        self._created = int(time.time())
        self._model = deployment.model
        self._calls: dict[int, int] = {}  # choice index -> tool calls so far (started choices)
        self._finished: set[int] = set()
        self._usage: object = None

    def _chunk(self, choices: list[JSONObject]) -> JSONObject:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": choices,
        }

    def feed(self, event: Mapping[str, Any]) -> list[JSONObject]:
        """The chunks for one event (possibly none)."""
        error = event.get("error")
        if error:
            raise error_from_payload(self._deployment, None, error, {})
        raise_if_prompt_blocked(self._deployment, event)
        if self._id is None:
            self._id = completion_id(event)
            self._model = model_name(self._deployment, event)
        if "usageMetadata" in event:
            self._usage = event["usageMetadata"]
        deltas: list[JSONObject] = []
        finishes: list[JSONObject] = []
        for index, candidate in candidates(event):
            if index in self._finished:
                continue
            found = candidate_parts(candidate)
            delta: JSONObject = {}
            if index not in self._calls:
                self._calls[index] = 0
                delta["role"] = "assistant"
            if found.text or (delta and not found.tool_calls):
                delta["content"] = found.text
            if found.tool_calls:
                first = self._calls[index]
                delta["tool_calls"] = [
                    {"index": first + k, **call} for k, call in enumerate(found.tool_calls)
                ]
                self._calls[index] = first + len(found.tool_calls)
            if delta:
                deltas.append(
                    {"index": index, "delta": delta, "finish_reason": None, "logprobs": None}
                )
            reason = candidate.get("finishReason")
            if isinstance(reason, str) and reason:
                self._finished.add(index)
                mapped = finish_reason(reason, self._calls[index] > 0)
                finishes.append({"index": index, "delta": {}, "finish_reason": mapped})
        return [self._chunk(choices) for choices in (deltas, finishes) if choices]

    def finish(self) -> JSONObject:
        """The closing usage chunk, once the upstream body has ended."""
        unfinished = sorted(set(self._calls) - self._finished)
        if not self._calls or unfinished:
            raise UpstreamProtocolError(
                f"The upstream provider (gemini, deployment '{self._deployment.id}') ended the "
                "stream before the answer was finished (no finishReason)."
            )
        return {**self._chunk([]), "usage": usage(self._usage)}


async def translate_sse(
    deployment: Deployment, body: AsyncIterator[bytes]
) -> AsyncGenerator[JSONObject, None]:
    """The chunks for a raw ``alt=sse`` body, as its bytes arrive; the usage chunk last."""
    decoder = SSEDecoder()
    translator = StreamTranslator(deployment)
    async for raw in body:
        for event in decoder.feed(raw):
            for chunk in translator.feed(parse_event(deployment, event.data)):
                yield chunk
    yield translator.finish()
