"""Extended thinking in the emulated Anthropic Messages API.

With ``thinking: {"type": "enabled", "budget_tokens": N}`` (N at least 1024 and below
``max_tokens``, as the API requires) the answer starts with a ``thinking`` block: the text
``Considering: <the last user text>`` and a ``signature``, an HMAC of that text under an emulator
secret, streamed as ``thinking_delta`` fragments then one ``signature_delta``. A ``thinking``
block sent back in the conversation must carry the signature the emulator gave it, byte for
byte, like the API, which rejects a changed or missing one (``Invalid `signature` in `thinking`
block``): so a test can tell whether a gateway passed the block through untouched. Its text
counts as output tokens under the shared token rule.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from ai_gateway.emulator import text as tx
from ai_gateway.emulator.flow import EmulatorError, sse_event

_SECRET = b"ai-gateway-emulator-thinking"
MIN_BUDGET = 1024


def signature(thinking: str) -> str:
    digest = hmac.new(_SECRET, thinking.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def wants_thinking(body: dict[str, Any]) -> bool:
    """Whether the request turns thinking on (400 for a budget the API refuses)."""
    config = body.get("thinking")
    if not isinstance(config, dict) or config.get("type") != "enabled":
        return False
    budget = config.get("budget_tokens")
    if not isinstance(budget, int) or budget < MIN_BUDGET:
        raise EmulatorError(400, f"thinking.enabled.budget_tokens: Input should be >= {MIN_BUDGET}")
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, int) and budget >= max_tokens:
        raise EmulatorError(400, "`max_tokens` must be greater than `thinking.budget_tokens`.")
    return True


def check_signatures(body: dict[str, Any]) -> None:
    """400 for a thinking block in the conversation whose signature is not the one given."""
    for i, message in enumerate(body.get("messages") or ()):
        content = message.get("content") if isinstance(message, dict) else None
        for j, block in enumerate(content if isinstance(content, list) else ()):
            if not isinstance(block, dict) or block.get("type") != "thinking":
                continue
            text, sig = block.get("thinking"), block.get("signature")
            if not isinstance(text, str) or not isinstance(sig, str) or sig != signature(text):
                raise EmulatorError(
                    400, f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
                )


def thinking_block(last_user_text: str) -> dict[str, Any]:
    text = "Considering: " + " ".join(last_user_text.split()[:12])
    return {"type": "thinking", "thinking": text, "signature": signature(text)}


def thinking_tokens(block: dict[str, Any]) -> int:
    return tx.count_tokens(block["thinking"])


def thinking_frames(block: dict[str, Any], index: int) -> list[bytes]:
    """The block's events: start, thinking_delta fragments, signature_delta, stop."""
    opening = {"type": "thinking", "thinking": "", "signature": ""}
    frames = [
        sse_event(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": opening},
        )
    ]
    words = block["thinking"].split(" ")
    pieces = [w + (" " if k < len(words) - 1 else "") for k, w in enumerate(words)]
    deltas: list[dict[str, Any]] = [{"type": "thinking_delta", "thinking": p} for p in pieces]
    deltas.append({"type": "signature_delta", "signature": block["signature"]})
    frames += [
        sse_event(
            "content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}
        )
        for d in deltas
    ]
    frames.append(sse_event("content_block_stop", {"type": "content_block_stop", "index": index}))
    return frames
