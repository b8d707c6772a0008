"""The chain's answer (an OpenAI `chat.completion`) as a Messages API `message`. Pure.

From an Anthropic deployment the answer carries Anthropic's own message (providers/native.py):
that is the answer, as it came (thinking blocks and signatures, citations, server tool blocks,
usage with its cache counts), unless a stage changed the answer's view on the way back (content
rules redacting text, thinking or tool arguments, a post_response hook): then the changed text
replaces the message's text blocks (one block holds it), the changed reasoning its thinking
blocks' text (a thinking block changed so no longer matches its signature: Anthropic will refuse
it if the client sends it back), changed tool arguments the `input` of their `tool_use` blocks,
and a `content_filter` finish becomes the `refusal` stop reason.

From any other deployment (or a cached answer without Anthropic's message) it is translated:
`reasoning_content` -> a `thinking` block with an empty signature (other providers' reasoning has
none), the text -> a `text` block, `tool_calls` -> `tool_use` blocks (`arguments` parsed as the
`input` object), `finish_reason` stop/length/tool_calls/content_filter -> `end_turn` /
`max_tokens` / `tool_use` / `refusal` (OpenAI does not say which stop sequence matched, so a
stop is `end_turn`), and the usage: `input_tokens` are the prompt tokens not read from or written
to a cache, `cache_read_input_tokens` the cached ones.
"""

from __future__ import annotations

from typing import Any

import orjson

from ai_gateway.providers.native import NATIVE_KEY, JSONObject

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def stop_reason(finish: object) -> str:
    return STOP_REASONS.get(finish, "end_turn") if isinstance(finish, str) else "end_turn"


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_of(usage: object) -> JSONObject:
    """Anthropic usage from an OpenAI one (which keeps Anthropic's raw cache counts when the
    answer came from Anthropic)."""
    if not isinstance(usage, dict):
        usage = {}
    details = usage.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    read = _int(usage["cache_read_input_tokens"]) if "cache_read_input_tokens" in usage else cached
    written = _int(usage.get("cache_creation_input_tokens"))
    return {
        "input_tokens": max(_int(usage.get("prompt_tokens")) - read - written, 0),
        "output_tokens": _int(usage.get("completion_tokens")),
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
    }


def message_id(raw: object) -> str:
    text = str(raw or "")
    return text if text.startswith("msg_") else f"msg_{text}"


def tool_input(arguments: object) -> JSONObject:
    """A tool call's `arguments` as Anthropic's `input` object; arguments that are not a JSON
    object are kept as text under `_arguments` rather than lost."""
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"_arguments": arguments}
    return parsed if isinstance(parsed, dict) else {"_arguments": arguments}


def _first_choice(completion: JSONObject) -> JSONObject:
    choices = completion.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    return first if isinstance(first, dict) else {}


def _view_text(message: JSONObject) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def to_message(completion: JSONObject, model: str) -> JSONObject:
    """The `message` for an answer: Anthropic's own when it carries it, else translated."""
    native = completion.get(NATIVE_KEY)
    if isinstance(native, dict):
        return _patched(native, _first_choice(completion))
    choice = _first_choice(completion)
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    blocks: list[JSONObject] = []
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        blocks.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = _view_text(message)
    if text:
        blocks.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        blocks.append(
            {
                "type": "tool_use",
                "id": str(call.get("id") or ""),
                "name": str(function.get("name") or ""),
                "input": tool_input(function.get("arguments")),
            }
        )
    return {
        "id": message_id(completion.get("id")),
        "type": "message",
        "role": "assistant",
        "model": str(completion.get("model") or model),
        "content": blocks,
        "stop_reason": stop_reason(choice.get("finish_reason")),
        "stop_sequence": None,
        "usage": usage_of(completion.get("usage")),
    }


def _patched(native: JSONObject, choice: JSONObject) -> JSONObject:
    """Anthropic's message, with what a stage changed in the answer's view put into it."""
    view = choice.get("message")
    view = view if isinstance(view, dict) else {}
    content: list[Any] = [
        dict(b) if isinstance(b, dict) else b for b in native.get("content") or ()
    ]
    reasoning = view.get("reasoning_content")
    content = _with_text(content, "thinking", reasoning if isinstance(reasoning, str) else "")
    content = _with_text(content, "text", _view_text(view))
    calls = {
        c.get("id"): c.get("function") for c in view.get("tool_calls") or () if isinstance(c, dict)
    }
    for block in content:
        if isinstance(block, dict) and block.get("type") == "tool_use":
            function = calls.get(block.get("id"))
            if isinstance(function, dict):
                arguments = tool_input(function.get("arguments"))
                if arguments != block.get("input"):
                    block["input"] = arguments
    message = {**native, "content": content}
    if choice.get("finish_reason") == "content_filter":
        message["stop_reason"] = "refusal"
    return message


def _with_text(content: list[Any], kind: str, text: str) -> list[Any]:
    """`content` whose blocks of `kind` (text, thinking) hold `text` in all: unchanged when they
    do, else the first of them holds it all (the others are dropped) or a new one does."""
    blocks = [b for b in content if isinstance(b, dict) and b.get("type") == kind]
    if "".join(str(b.get(kind, "")) for b in blocks) == text:
        return content
    keep = blocks[0] if blocks and text else None
    content = [b for b in content if b is keep or b not in blocks]
    if keep is not None:
        keep[kind] = text
        keep.pop("citations", None)  # they pointed into the text that changed
    elif text:
        at = sum(1 for b in content if isinstance(b, dict) and b.get("type") == "thinking")
        block = {"type": kind, kind: text}
        if kind == "thinking":
            block["signature"] = ""
        content.insert(at if kind == "text" else 0, block)
    return content
