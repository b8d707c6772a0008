"""Parsing and validation of Anthropic Messages requests into the neutral prompt.

Follows the Messages API reference: ``model``, ``max_tokens`` and ``messages`` are required;
roles are ``user`` / ``assistant`` only (the system prompt is the top-level ``system``,
a string or a list of text blocks); consecutive turns of the same role are accepted (the
API combines them) and a final assistant turn is a prefill.  Like the API it rejects empty
content (except a final assistant turn), empty text blocks, trailing whitespace in a final
assistant turn, ``tool_use`` blocks not answered by ``tool_result`` blocks in the next
message and ``tool_result`` blocks that answer no ``tool_use`` of the previous message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ai_gateway.emulator import catalog
from ai_gateway.emulator import model as m
from ai_gateway.emulator.flow import EmulatorError

_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,128}")
_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_BLOCK_TAGS = (
    "'text', 'image', 'document', 'tool_use', 'tool_result', 'thinking', 'redacted_thinking'"
)


def invalid(message: str) -> EmulatorError:
    return EmulatorError(400, message)


@dataclass(frozen=True)
class MessagesRequest:
    model: str
    prompt: m.Prompt
    stream: bool


def _text(value: Any, where: str) -> m.Part:
    if not isinstance(value, str):
        raise invalid(f"{where}.text: Field required")
    if not value:
        raise invalid("messages: text content blocks must be non-empty")
    return m.text_part(value)


def _image(block: dict[str, Any], where: str) -> m.Part:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64" and isinstance(source, dict):
        if source.get("media_type") not in _MEDIA_TYPES:
            raise invalid(
                f"{where}.source.base64.media_type: Input should be 'image/jpeg', 'image/png', "
                "'image/gif' or 'image/webp'"
            )
        if not isinstance(source.get("data"), str):
            raise invalid(f"{where}.source.base64.data: Field required")
    elif kind == "url" and isinstance(source, dict):
        if not isinstance(source.get("url"), str):
            raise invalid(f"{where}.source.url.url: Field required")
    elif kind != "file":
        raise invalid(f"{where}.source: Input tag '{kind}' found using 'type' does not match")
    return m.image_part()


def _tool_result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(b.get("text", ""))
            for b in content
            if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


def content_parts(
    content: Any, where: str
) -> tuple[list[m.Part], list[str], list[tuple[int, str]]]:
    """Parts of one message, its tool_use ids and its (index, tool_use_id) results."""
    if isinstance(content, str):
        return ([_text(content, where)] if content else []), [], []
    if not isinstance(content, list):
        raise invalid(f"{where}.content: Input should be a valid list")
    parts: list[m.Part] = []
    uses: list[str] = []
    results: list[tuple[int, str]] = []
    for j, block in enumerate(content):
        loc = f"{where}.content.{j}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block, dict):
            parts.append(_text(block.get("text"), loc))
        elif kind == "image" and isinstance(block, dict):
            parts.append(_image(block, loc))
        elif kind == "document":
            parts.append(m.image_part())
        elif kind == "tool_use" and isinstance(block, dict):
            name, args, use_id = block.get("name"), block.get("input"), block.get("id")
            if not isinstance(use_id, str) or not isinstance(name, str):
                raise invalid(f"{loc}.tool_use.id: Field required")
            if not isinstance(args, dict):
                raise invalid(f"{loc}.tool_use.input: Input should be a valid dictionary")
            parts.append(m.tool_call_part(name, args))
            uses.append(use_id)
        elif kind == "tool_result" and isinstance(block, dict):
            use_id = block.get("tool_use_id")
            if not isinstance(use_id, str):
                raise invalid(f"{loc}.tool_result.tool_use_id: Field required")
            parts.append(m.tool_result_part(_tool_result_text(block.get("content"))))
            results.append((j, use_id))
        elif kind not in ("thinking", "redacted_thinking"):
            raise invalid(
                f"{loc}: Input tag '{kind}' found using 'type' does not match any of the "
                f"expected tags: {_BLOCK_TAGS}"
            )
    return parts, uses, results


def parse_messages(raw: Any) -> list[m.Turn]:
    if raw is None:
        raise invalid("messages: Field required")
    if not isinstance(raw, list):
        raise invalid("messages: Input should be a valid list")
    if not raw:
        raise invalid("messages: at least one message is required")
    turns: list[m.Turn] = []
    previous_uses: list[str] = []
    for i, msg in enumerate(raw):
        where = f"messages.{i}"
        role = msg.get("role") if isinstance(msg, dict) else None
        if role not in ("user", "assistant") or not isinstance(msg, dict):
            raise invalid(f"{where}.role: Input should be 'user' or 'assistant'")
        if "content" not in msg:
            raise invalid(f"{where}.content: Field required")
        content = msg["content"]
        parts, uses, results = content_parts(content, where)
        final = i == len(raw) - 1
        if not parts and not (final and role == "assistant"):
            raise invalid(
                f"{where}: all messages must have non-empty content except for the optional "
                "final assistant message"
            )
        answered = {use_id for _, use_id in results}
        for j, use_id in results:
            if use_id not in previous_uses:
                raise invalid(
                    f"{where}.content.{j}: unexpected `tool_use_id` found in `tool_result` "
                    f"blocks: {use_id}. Each `tool_result` block must have a corresponding "
                    "`tool_use` block in the previous message."
                )
        missing = [u for u in previous_uses if u not in answered]
        if missing:
            raise invalid(
                f"messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                "corresponding `tool_result` block in the next message."
            )
        if final and role == "assistant" and parts and parts[-1].text != parts[-1].text.rstrip():
            raise invalid("final assistant content cannot end with trailing whitespace")
        previous_uses = uses
        turns.append(m.Turn(role, tuple(parts)))
    if previous_uses:
        raise invalid(
            f"messages.{len(raw) - 1}: `tool_use` ids were found without `tool_result` blocks "
            f"immediately after: {', '.join(previous_uses)}. Each `tool_use` block must have a "
            "corresponding `tool_result` block in the next message."
        )
    return turns


def parse_system(raw: Any) -> list[m.Turn]:
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        return [m.Turn("system", (m.text_part(raw),))]
    if not isinstance(raw, list) or not all(
        isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
        for b in raw
    ):
        raise invalid("system: Input should be a valid string or a list of text blocks")
    return [m.Turn("system", tuple(m.text_part(b["text"]) for b in raw))]


def parse_tools(raw: Any) -> tuple[m.Tool, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise invalid("tools: Input should be a valid list")
    tools: list[m.Tool] = []
    for j, tool in enumerate(raw):
        name = tool.get("name") if isinstance(tool, dict) else None
        if (
            not isinstance(tool, dict)
            or not isinstance(name, str)
            or not _TOOL_NAME.fullmatch(name)
        ):
            raise invalid(
                f"tools.{j}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"
            )
        schema = tool.get("input_schema")
        if tool.get("type") in (None, "custom") and not isinstance(schema, dict):
            raise invalid(f"tools.{j}.custom.input_schema: Field required")
        tools.append(m.Tool(name, schema if isinstance(schema, dict) else {}))
    return tuple(tools)


def parse_tool_choice(raw: Any, tools: tuple[m.Tool, ...]) -> m.ToolChoice:
    if raw is None:
        return m.ToolChoice("auto" if tools else "none")
    kind = raw.get("type") if isinstance(raw, dict) else None
    if not isinstance(raw, dict) or kind not in ("auto", "any", "tool", "none"):
        raise invalid(
            f"tool_choice: Input tag '{kind}' found using 'type' does not match any of the "
            "expected tags: 'auto', 'any', 'tool', 'none'"
        )
    if not tools and kind != "none":
        raise invalid("tool_choice may only be specified while providing tools.")
    parallel = raw.get("disable_parallel_tool_use") is not True
    if kind == "tool":
        name = raw.get("name")
        if not isinstance(name, str):
            raise invalid("tool_choice.tool.name: Field required")
        if name not in {t.name for t in tools}:
            raise invalid(f"Tool '{name}' not found in provided tools")
        return m.ToolChoice("required", name=name, parallel=parallel)
    if kind == "any":
        return m.ToolChoice("required", parallel=parallel)
    return m.ToolChoice("none" if kind == "none" else "auto", parallel=parallel)


def parse_request(body: dict[str, Any]) -> MessagesRequest:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model: Field required")
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise invalid("max_tokens: Field required")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise invalid("max_tokens: Input should be greater than or equal to 1")
    turns = parse_system(body.get("system")) + parse_messages(body.get("messages"))
    stop = body.get("stop_sequences") or []
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise invalid("stop_sequences: Input should be a valid list of strings")
    tools = parse_tools(body.get("tools"))
    choice = parse_tool_choice(body.get("tool_choice"), tools)
    if catalog.find("anthropic", model) is None:
        raise EmulatorError(404, f"model: {model}")
    prompt = m.Prompt(
        turns=tuple(turns), tools=tools, tool_choice=choice, max_tokens=max_tokens, stop=tuple(stop)
    )
    return MessagesRequest(model=model, prompt=prompt, stream=body.get("stream") is True)
