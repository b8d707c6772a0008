"""Anthropic Messages response -> OpenAI ``chat.completion``. Pure: no I/O, no state.

Text blocks are joined (with nothing between them: citations split one text into several
blocks) into ``content``; ``tool_use`` blocks become ``tool_calls`` with compact JSON
``arguments``; the ``response_format`` tool's input becomes JSON text in ``content`` instead.
Thinking, redacted-thinking and server-tool blocks are not part of the OpenAI message and are
skipped (but with ``reasoning``, for a native request, the thinking text is the message's
``reasoning_content``, for the output content rules to see). ``stop_reason`` maps to
``finish_reason`` through :data:`FINISH_REASONS`.

Usage: ``prompt_tokens`` counts every input token, i.e. ``input_tokens`` (uncached) plus
``cache_read_input_tokens`` plus ``cache_creation_input_tokens``; ``prompt_tokens_details.
cached_tokens`` is the cache reads, and the two raw cache counts are kept as extra usage fields
so that cost tracking can price cache reads and writes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from ai_gateway.errors import UpstreamProtocolError
from ai_gateway.providers.base import JSONObject

FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def finish_reason(stop_reason: object, *, tool_calls: bool) -> str:
    """The OpenAI finish reason; ``tool_use`` without a real tool call (the response-format
    tool) is a plain ``stop``; an unknown (newer) reason counts as ``stop``."""
    reason = FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"
    if reason == "tool_calls" and not tool_calls:
        return "stop"
    return reason


def _count(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def openai_usage(usage: Mapping[str, Any]) -> JSONObject:
    """OpenAI usage from Anthropic's, keeping the raw cache counts."""
    cache_read = _count(usage, "cache_read_input_tokens")
    cache_write = _count(usage, "cache_creation_input_tokens")
    prompt = _count(usage, "input_tokens") + cache_read + cache_write
    completion = _count(usage, "output_tokens")
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cache_read},
        "cache_read_input_tokens": cache_read,
        "cache_creation_input_tokens": cache_write,
    }


def to_chat_completion(
    message: object,
    response_tool: str | None,
    where: str,
    *,
    created: int | None = None,
    reasoning: bool = False,
) -> JSONObject:
    """The ``chat.completion`` for one Anthropic message; ``where`` names the upstream in errors."""
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        raise UpstreamProtocolError(
            f"The upstream provider ({where}) answered with something that is not a message."
        )
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[JSONObject] = []
    for block in message["content"]:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "thinking" and reasoning and isinstance(block.get("thinking"), str):
            thoughts.append(block["thinking"])
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            if response_tool is not None and block.get("name") == response_tool:
                texts.append(arguments)
                continue
            calls.append(
                {
                    "id": str(block.get("id", "")),
                    "type": "function",
                    "function": {"name": str(block.get("name", "")), "arguments": arguments},
                }
            )
    text = "".join(texts)
    reply: JSONObject = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        reply["tool_calls"] = calls
    if thoughts:
        reply["reasoning_content"] = "".join(thoughts)
    usage = message.get("usage")
    return {
        "id": str(message.get("id") or ""),
        "object": "chat.completion",
        "created": created if created is not None else int(time.time()),
        "model": str(message.get("model") or ""),
        "choices": [
            {
                "index": 0,
                "message": reply,
                "finish_reason": finish_reason(message.get("stop_reason"), tool_calls=bool(calls)),
                "logprobs": None,
            }
        ],
        "usage": openai_usage(usage if isinstance(usage, dict) else {}),
    }
