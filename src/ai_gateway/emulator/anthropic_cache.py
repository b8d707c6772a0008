"""Emulated Anthropic prompt caching: which input tokens are cache reads and cache writes.

A block carrying ``"cache_control": {"type": "ephemeral"}`` (``ttl`` "5m" or "1h" optional) is
a breakpoint: a tool definition, a system block or a message content block. The request is read
as one sequence in Anthropic's order, tools, system, messages, and the prefix up to each
breakpoint is hashed together with the model: the exact JSON of each block as received (keys in
the order sent, ``cache_control`` left out), so any change before a breakpoint, a reordered key
included, is another prefix. Each prefix is worth the tokens of the shared token rule
(``text.py``) up to its breakpoint: a tool ``TOOL_DEFINITION_TOKENS``, each turn (the system
prompt included) ``MESSAGE_OVERHEAD_TOKENS``, each block its own tokens.

* Breakpoints whose prefix is shorter than ``MIN_TOKENS`` are ignored, as Anthropic
  processes short prefixes without caching (its minimum is 1024 tokens or more, by model).
* The longest prefix already cached is a read (``cache_read_input_tokens``); the tokens from
  there to the last breakpoint are written (``cache_creation_input_tokens``); every prefix
  marked is cached from then on, for the emulator's lifetime (no TTL; ``DELETE
  /_emulator/prompt-cache`` forgets them all). ``input_tokens`` is the rest: the tokens after
  the last breakpoint, so the three add up to the prompt's tokens.
* More than ``MAX_BREAKPOINTS`` breakpoints, or a ``cache_control`` that is not ephemeral, is a
  400 as on the API.

Simplified: only the breakpoints themselves are looked up (the API also looks back up to 20
blocks before a breakpoint for a shorter cached prefix), and top-level automatic caching is
not emulated.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ai_gateway.emulator import text as tx
from ai_gateway.emulator.anthropic_parse import content_parts, invalid
from ai_gateway.emulator.state import PromptCache

MIN_TOKENS = 1024
MAX_BREAKPOINTS = 4
_TTLS = (None, "5m", "1h")


@dataclass(frozen=True)
class _Segment:
    data: bytes
    tokens: int
    marked: bool


def cache_usage(model: str, body: dict[str, Any], cache: PromptCache) -> tuple[int, int]:
    """(cache read, cache creation) tokens of a valid Messages request, updating ``cache``."""
    hasher = hashlib.sha256(model.encode())
    total = 0
    breakpoints: list[tuple[int, str]] = []
    for segment in _segments(body):
        hasher.update(len(segment.data).to_bytes(8, "big") + segment.data)
        total += segment.tokens
        if segment.marked:
            breakpoints.append((total, hasher.hexdigest()))
    if len(breakpoints) > MAX_BREAKPOINTS:
        raise invalid(
            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {len(breakpoints)}."
        )
    cacheable = [(tokens, digest) for tokens, digest in breakpoints if tokens >= MIN_TOKENS]
    if not cacheable:
        return 0, 0
    read = next((tokens for tokens, digest in reversed(cacheable) if cache.hit(digest)), 0)
    for _, digest in cacheable:
        cache.add(digest)
    return read, cacheable[-1][0] - read


def _segments(body: dict[str, Any]) -> Iterator[_Segment]:
    """The request as a sequence: every block with its tokens and whether it is a breakpoint;
    a turn's overhead is a segment of its own (the role)."""
    for j, tool in enumerate(body.get("tools") or []):
        yield _Segment(_canonical(tool), tx.TOOL_DEFINITION_TOKENS, _marked(tool, f"tools.{j}"))
    system = body.get("system")
    if isinstance(system, str) and system:
        tokens = tx.MESSAGE_OVERHEAD_TOKENS + tx.count_tokens(system)
        yield _Segment(_canonical({"system": system}), tokens, False)
    elif isinstance(system, list):
        yield _Segment(b'"system"', tx.MESSAGE_OVERHEAD_TOKENS, False)
        for j, block in enumerate(system):
            tokens = tx.count_tokens(block["text"])
            yield _Segment(_canonical(block), tokens, _marked(block, f"system.{j}"))
    for i, message in enumerate(body["messages"]):
        yield _Segment(_canonical(message["role"]), tx.MESSAGE_OVERHEAD_TOKENS, False)
        content = message["content"]
        blocks = [content] if isinstance(content, str) else content
        for j, block in enumerate(blocks):
            where = f"messages.{i}.content.{j}"
            parts = content_parts(block if isinstance(block, str) else [block], where)[0]
            tokens = sum(part.tokens() for part in parts)
            marked = isinstance(block, dict) and _marked(block, where)
            yield _Segment(_canonical(block), tokens, marked)


def _canonical(value: Any) -> bytes:
    if isinstance(value, dict):
        value = {k: v for k, v in value.items() if k != "cache_control"}
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _marked(block: dict[str, Any], where: str) -> bool:
    control = block.get("cache_control")
    if control is None:
        return False
    if not isinstance(control, dict) or control.get("type") != "ephemeral":
        raise invalid(f"{where}.cache_control.type: Input should be 'ephemeral'")
    if control.get("ttl") not in _TTLS:
        raise invalid(f"{where}.cache_control.ttl: Input should be '5m' or '1h'")
    return True
