"""Anthropic prompt caching: breakpoints on the stable prefix of a Messages request. Pure.

Anthropic caches the prefix of a request up to a block that carries
``"cache_control": {"type": "ephemeral"}`` (a breakpoint). The prefix is rendered in the order
``tools``, ``system``, ``messages``, and it must match byte for byte to be read again. A request
may hold at most 4 breakpoints (more is a 400). A prefix shorter than the model's minimum is
processed without caching, at no extra cost: 1024 tokens for Claude Sonnet 4 / 4.5, Opus 4 /
4.1 and Sonnet 3.7, 2048 for Haiku 3 / 3.5 (and Sonnet 4.6), 4096 for Opus 4.5 and Haiku 4.5.
Writing the cache costs 1.25 times the input price (5-minute cache), reading it 0.1 times; the
response reports ``cache_creation_input_tokens`` and ``cache_read_input_tokens`` beside
``input_tokens``, the tokens after the last breakpoint.

:func:`mark_stable_prefix` adds up to two breakpoints: on the last tool definition and on the
last system block, when the tools and the system prompt together hold at least
``min_tokens`` tokens. It adds none when prompt caching is off, or when the request already
carries a ``cache_control`` anywhere (the client chose its own breakpoints, and more could
exceed the limit of 4). The tokens are estimated, not counted: the UTF-8 bytes of the system
texts plus those of the tools' compact JSON, divided by 4 (the byte term of the gateway's own
estimate, ``usage/tokens.py``). For English that is a little below Anthropic's count, so a
prefix is marked only when it very likely reaches the minimum. The marks are constants, so two
requests with the same tools and system prompt have the same prefix bytes.
"""

from __future__ import annotations

from typing import Any

import orjson

from ai_gateway.cache.config import PromptCaching
from ai_gateway.providers.base import JSONObject

BYTES_PER_TOKEN = 4


def mark_stable_prefix(body: JSONObject, settings: PromptCaching | None) -> int:
    """Mark the last tool and the last system block of ``body`` (the Messages request the
    gateway built, changed in place) as breakpoints when the rules above allow it; returns
    how many marks were added (0, 1 or 2)."""
    if settings is None or not settings.enabled or _has_cache_control(body):
        return 0
    tools: list[JSONObject] = body.get("tools") or []
    system: list[JSONObject] = body.get("system") or []
    if _estimated_tokens(tools, system) < settings.min_tokens:
        return 0
    marked = 0
    for blocks in (tools, system):
        if blocks:
            blocks[-1]["cache_control"] = {"type": "ephemeral"}
            marked += 1
    return marked


def _estimated_tokens(tools: list[JSONObject], system: list[JSONObject]) -> int:
    size = len(orjson.dumps(tools)) if tools else 0
    size += sum(len(block["text"].encode()) for block in system)
    return size // BYTES_PER_TOKEN


def _has_cache_control(body: JSONObject) -> bool:
    """Whether any tool, system block or message block (a tool result's blocks included)
    carries a ``cache_control`` of the client's."""
    blocks: list[Any] = [*(body.get("tools") or []), *(body.get("system") or [])]
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, list):
            blocks.extend(content)
    while blocks:
        block = blocks.pop()
        if not isinstance(block, dict):
            continue
        if "cache_control" in block:
            return True
        nested = block.get("content")
        if isinstance(nested, list):
            blocks.extend(nested)
    return False
