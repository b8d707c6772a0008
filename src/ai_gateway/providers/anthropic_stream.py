"""Anthropic Messages stream events -> OpenAI ``chat.completion.chunk`` objects.

One :class:`StreamTranslator` per stream; feed it each decoded server-sent event and relay the
chunks it returns at once (nothing is buffered: every text or tool-argument fragment becomes a
chunk as it arrives). The mapping:

* ``message_start`` -> the first chunk, ``delta: {role: assistant, content: ""}``;
* ``content_block_start``: a text block -> nothing (or its initial text, if any); a
  ``tool_use`` block -> a ``tool_calls`` delta with its ``index`` among the tool calls (from 0),
  ``id``, ``type``, ``function.name`` and empty ``arguments``;
* ``content_block_delta``: ``text_delta`` -> a content delta; ``input_json_delta`` -> a
  ``tool_calls`` delta carrying the ``partial_json`` fragment as ``arguments``;
* the ``response_format`` tool's fragments are content deltas instead (see
  ``anthropic_request``);
* thinking blocks and their ``thinking_delta`` / ``signature_delta``, server-tool blocks and
  ``citations_delta`` are skipped: the OpenAI chunk has no place for them (but with
  ``reasoning``, for a native request, ``thinking_delta`` -> a ``reasoning_content`` delta, so
  that the output content rules see the thinking that the Messages API shows its client);
* ``message_delta`` -> a chunk with the mapped ``finish_reason`` (its usage is cumulative and
  updates the counts from ``message_start``);
* ``message_stop`` -> the usage chunk, ``choices: []``; the stream is then complete;
* ``ping`` and unknown (newer) event types are ignored; an ``error`` event raises
  (``overloaded_error`` -> 503, ``rate_limit_error`` -> 429, others 502).

Every chunk carries the id, ``created`` and model of ``message_start``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import orjson

from ai_gateway.errors import (
    GatewayError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRateLimitError,
    UpstreamUnavailableError,
)
from ai_gateway.providers.anthropic_response import finish_reason, openai_usage
from ai_gateway.providers.base import JSONObject
from ai_gateway.redaction import scrub
from ai_gateway.streaming.sse import ServerSentEvent

_TEXT, _TOOL, _JSON, _SKIP, _THINK = "text", "tool", "json", "skip", "think"
_USAGE_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


def stream_error(where: str, data: object, secrets: Iterable[str | None] = ()) -> GatewayError:
    """The gateway error for an in-stream ``error`` event."""
    error = data.get("error") if isinstance(data, dict) else None
    kind = str(error.get("type") or "") if isinstance(error, dict) else ""
    message = str(error.get("message") or "") if isinstance(error, dict) else ""
    detail = scrub(message or kind or "unknown error", secrets)[:2000]
    text = f"The upstream provider ({where}) failed mid-stream ({kind or 'error'}): {detail}"
    if kind == "overloaded_error":
        return UpstreamUnavailableError(text)
    if kind == "rate_limit_error":
        return UpstreamRateLimitError(text)
    return UpstreamError(text)


class StreamTranslator:
    """Turns one Anthropic event stream into OpenAI chunks. Not thread-safe; one per stream."""

    def __init__(
        self,
        where: str,
        response_tool: str | None = None,
        secrets: Iterable[str | None] = (),
        reasoning: bool = False,
    ) -> None:
        self._where = where
        self._reasoning = reasoning
        self._response_tool = response_tool
        self._secrets = tuple(secrets)
        self._id = ""
        self._model = ""
        self._created = 0
        self._started = False
        self.finished = False
        self._blocks: dict[int, tuple[str, int]] = {}
        self._tool_calls = 0
        self._usage: dict[str, int] = {}

    def feed(self, event: ServerSentEvent) -> list[JSONObject]:
        """The chunks for one event (often none); raises on an error event or a bad event."""
        if self.finished or not event.data:
            return []
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise self._protocol("sent a stream event that is not JSON") from None
        if not isinstance(data, dict):
            raise self._protocol("sent a stream event that is not a JSON object")
        return self.feed_data(data, event.event)

    def feed_data(self, data: JSONObject, name: str | None = None) -> list[JSONObject]:
        """The chunks for one event already parsed (`name`: its `event:` line)."""
        if self.finished:
            return []
        kind = data.get("type") or name
        if kind == "error":
            raise stream_error(self._where, data, self._secrets)
        if kind == "ping":
            return []
        if kind == "message_start":
            return self._start(data.get("message"))
        if kind in ("content_block_start", "content_block_delta", "message_delta", "message_stop"):
            if not self._started:
                raise self._protocol(f"sent '{kind}' before 'message_start'")
            if kind == "content_block_start":
                return self._block_start(data)
            if kind == "content_block_delta":
                return self._block_delta(data)
            if kind == "message_delta":
                return self._message_delta(data)
            self.finished = True
            return [self._chunk_without_choices()]
        return []  # content_block_stop, and event types newer than this adapter

    # -- events ---------------------------------------------------------------------------------

    def _start(self, message: object) -> list[JSONObject]:
        if not isinstance(message, dict):
            raise self._protocol("sent a 'message_start' without a message")
        self._started = True
        self._id = str(message.get("id") or "")
        self._model = str(message.get("model") or "")
        self._created = int(time.time())
        self._update_usage(message.get("usage"))
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, data: JSONObject) -> list[JSONObject]:
        index, block = data.get("index"), data.get("content_block")
        if not isinstance(index, int) or not isinstance(block, dict):
            raise self._protocol("sent a malformed 'content_block_start'")
        kind = block.get("type")
        if kind == "text":
            self._blocks[index] = (_TEXT, 0)
            text = block.get("text")
            return [self._chunk({"content": text})] if isinstance(text, str) and text else []
        if kind == "tool_use":
            name = str(block.get("name") or "")
            if self._response_tool is not None and name == self._response_tool:
                self._blocks[index] = (_JSON, 0)
                return []
            position = self._tool_calls
            self._tool_calls += 1
            self._blocks[index] = (_TOOL, position)
            call = {
                "index": position,
                "id": str(block.get("id") or ""),
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }
            return [self._chunk({"tool_calls": [call]})]
        if kind == "thinking" and self._reasoning:
            self._blocks[index] = (_THINK, 0)
            text = block.get("thinking")
            return (
                [self._chunk({"reasoning_content": text})] if isinstance(text, str) and text else []
            )
        self._blocks[index] = (_SKIP, 0)  # thinking, redacted_thinking, server tools, ...
        return []

    def _block_delta(self, data: JSONObject) -> list[JSONObject]:
        index, delta = data.get("index"), data.get("delta")
        if not isinstance(index, int) or not isinstance(delta, dict):
            raise self._protocol("sent a malformed 'content_block_delta'")
        target = self._blocks.get(index)
        if target is None:
            raise self._protocol(f"sent a delta for content block {index}, which never started")
        kind, position = target
        delta_type = delta.get("type")
        if delta_type == "text_delta" and kind == _TEXT:
            text = delta.get("text")
            return [self._chunk({"content": text})] if isinstance(text, str) and text else []
        if delta_type == "thinking_delta" and kind == _THINK:
            text = delta.get("thinking")
            return (
                [self._chunk({"reasoning_content": text})] if isinstance(text, str) and text else []
            )
        if delta_type == "input_json_delta" and kind in (_TOOL, _JSON):
            fragment = delta.get("partial_json")
            if not isinstance(fragment, str) or not fragment:
                return []
            if kind == _JSON:
                return [self._chunk({"content": fragment})]
            call = {"index": position, "function": {"arguments": fragment}}
            return [self._chunk({"tool_calls": [call]})]
        return []  # thinking_delta, signature_delta, citations_delta, ...

    def _message_delta(self, data: JSONObject) -> list[JSONObject]:
        self._update_usage(data.get("usage"))
        delta = data.get("delta")
        stop_reason = delta.get("stop_reason") if isinstance(delta, dict) else None
        if stop_reason is None:
            return []
        reason = finish_reason(stop_reason, tool_calls=self._tool_calls > 0)
        return [self._chunk({}, reason)]

    # -- helpers --------------------------------------------------------------------------------

    def _update_usage(self, usage: object) -> None:
        if not isinstance(usage, dict):
            return
        for key in _USAGE_KEYS:
            value = usage.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                self._usage[key] = value

    def _base(self) -> JSONObject:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
        }

    def _chunk(self, delta: JSONObject, finish: str | None = None) -> JSONObject:
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
        return {**self._base(), "choices": [choice]}

    def _chunk_without_choices(self) -> JSONObject:
        return {**self._base(), "choices": [], "usage": openai_usage(self._usage)}

    def _protocol(self, what: str) -> UpstreamProtocolError:
        return UpstreamProtocolError(f"The upstream provider ({self._where}) {what}.")
