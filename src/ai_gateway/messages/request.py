"""A Messages API request as the gateway's OpenAI-shaped view (what the stages work on and what
OpenAI and Gemini deployments are sent), and what in it those providers cannot take.

Anthropic deployments are sent the client's own body (providers/anthropic_native.py); this
translation is for the stages (limits, content rules, cache, context, routing) and for the other
providers. Pure: no I/O, no state.

Messages
    `system` (a string or text blocks) -> a `system` message. A user turn's `tool_result` blocks
    -> `tool` messages (in order, before the rest of the turn); its other blocks -> content
    parts: `text`; `image` (base64 -> a data URL, url -> the URL); `document` with a base64 PDF
    -> a `file` part (`title` as its filename), with plain text or content blocks -> text. An
    assistant turn's text -> `content`, its `tool_use` blocks -> `tool_calls` (`input` as JSON
    `arguments`). A tool result's text blocks -> the tool message's text parts; `is_error` has no
    equivalent (the result's text says what went wrong).

Parameters
    `max_tokens` -> `max_completion_tokens`; `temperature`, `top_p`; `top_k` -> `top_k` (Gemini's
    topK); `stop_sequences` -> `stop`; `metadata.user_id` -> `user`; `tools` (client tools) ->
    function tools with `input_schema` as `parameters`; `tool_choice` auto/any/tool/none ->
    auto/required/named/none, `disable_parallel_tool_use` -> `parallel_tool_calls: false`;
    `thinking` enabled -> `reasoning_effort` by its budget (under 4,096 tokens `low`, under
    16,384 `medium`, else `high`; `adaptive` -> `medium`). Dropped, being hints that change no
    answer: `cache_control` everywhere, `service_tier`, `metadata` but its user.

Not expressible (each an `Unsupported`: a 400 naming the field, for the providers listed, when
the request is routed to one of them): a `thinking` block with a signature and a
`redacted_thinking` block (Anthropic's encrypted reasoning; a thinking block with an empty
signature, as the gateway renders other providers' reasoning, is left out instead); server tool
blocks and server tools (`web_search_...`, `bash_...`, ...); images and documents from Anthropic's
Files API or a URL document; documents with citations; images inside tool results; `top_k` and
more than 4 stop sequences for OpenAI (5 for Gemini); any top-level field this gateway does not
know (`container`, `mcp_servers`, `context_management`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from ai_gateway.errors import InvalidRequestError
from ai_gateway.providers.native import JSONObject, Unsupported

OTHERS = frozenset({"openai", "gemini", "local"})
OPENAI = frozenset({"openai", "local"})
# Fields the view expresses (or drops on purpose); any other top-level field is Anthropic's only.
KNOWN_FIELDS = frozenset(
    {
        "model", "messages", "system", "max_tokens", "stream", "temperature", "top_p", "top_k",
        "stop_sequences", "metadata", "tools", "tool_choice", "thinking", "service_tier",
    }
)  # fmt: skip
EFFORT_LOW_BELOW = 4096
EFFORT_MEDIUM_BELOW = 16384


@dataclass(slots=True)
class _View:
    messages: list[JSONObject] = field(default_factory=list)
    unsupported: list[Unsupported] = field(default_factory=list)

    def cannot(self, param: str, why: str, providers: frozenset[str] = OTHERS) -> None:
        self.unsupported.append(Unsupported(param, why, providers))


def to_view(body: JSONObject) -> tuple[JSONObject, tuple[Unsupported, ...]]:
    """The view of a request the schema (messages/schema.py) accepted; InvalidRequestError for a
    content block that is malformed whatever the provider."""
    out = _View()
    system = body.get("system")
    if isinstance(system, str) and system:
        out.messages.append({"role": "system", "content": system})
    elif isinstance(system, list) and system:
        parts = [{"type": "text", "text": b["text"]} for b in system]
        out.messages.append({"role": "system", "content": parts})
    for i, message in enumerate(body["messages"]):
        where = f"messages[{i}]"
        if message["role"] == "user":
            _user(message["content"], where, out)
        else:
            _assistant(message["content"], where, out)
    view: JSONObject = {"model": body["model"], "messages": out.messages}
    if body.get("max_tokens") is not None:  # a token count request has none
        view["max_completion_tokens"] = body["max_tokens"]
    if body.get("stream"):
        view["stream"] = True
        view["stream_options"] = {"include_usage": True}
    _parameters(body, view, out)
    _tools(body, view, out)
    for name in body:
        if name not in KNOWN_FIELDS:
            out.cannot(name, f"'{name}' is a field of Anthropic's API only")
    return view, tuple(out.unsupported)


# -- messages ----------------------------------------------------------------------------------


def _user(content: str | list[Any], where: str, out: _View) -> None:
    if isinstance(content, str):
        out.messages.append({"role": "user", "content": content})
        return
    parts: list[JSONObject] = []
    for j, block in enumerate(content):
        here = f"{where}.content[{j}]"
        kind = block.get("type")
        if kind == "tool_result":
            out.messages.append(_tool_result(block, here, out))
        else:
            parts.append(_part(block, here, out))
    if parts:
        out.messages.append({"role": "user", "content": parts})


def _assistant(content: str | list[Any], where: str, out: _View) -> None:
    if isinstance(content, str):
        out.messages.append({"role": "assistant", "content": content})
        return
    texts: list[str] = []
    calls: list[JSONObject] = []
    for j, block in enumerate(content):
        here = f"{where}.content[{j}]"
        kind = block.get("type")
        if kind == "text":
            texts.append(_text(block, here))
        elif kind == "tool_use":
            calls.append(_tool_call(block, here))
        elif kind == "thinking":
            if block.get("signature"):
                out.cannot(here, "a thinking block with its signature (Anthropic's reasoning)")
        elif kind == "redacted_thinking":
            out.cannot(here, "a redacted_thinking block (Anthropic's encrypted reasoning)")
        else:
            out.cannot(here, f"a '{kind}' block")
    message: JSONObject = {"role": "assistant", "content": "".join(texts)}
    if calls:
        message["tool_calls"] = calls
        if not texts:
            message["content"] = None
    out.messages.append(message)


def _text(block: JSONObject, where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise InvalidRequestError(f"{where}.text: a text block needs a 'text' string.", param=where)
    return text


def _tool_call(block: JSONObject, where: str) -> JSONObject:
    use_id, name, arguments = block.get("id"), block.get("name"), block.get("input")
    if not isinstance(use_id, str) or not isinstance(name, str) or not isinstance(arguments, dict):
        raise InvalidRequestError(
            f"{where}: a tool_use block needs 'id' and 'name' strings and an 'input' object.",
            param=where,
        )
    return {
        "id": use_id,
        "type": "function",
        "function": {"name": name, "arguments": orjson.dumps(arguments).decode()},
    }


def _tool_result(block: JSONObject, where: str, out: _View) -> JSONObject:
    use_id = block.get("tool_use_id")
    if not isinstance(use_id, str):
        raise InvalidRequestError(
            f"{where}.tool_use_id: a tool_result block needs a 'tool_use_id' string.",
            param=f"{where}.tool_use_id",
        )
    content = block.get("content")
    result: JSONObject = {"role": "tool", "tool_call_id": use_id, "content": ""}
    if isinstance(content, str):
        result["content"] = content
    elif isinstance(content, list):
        parts = []
        for k, inner in enumerate(content):
            here = f"{where}.content[{k}]"
            kind = inner.get("type") if isinstance(inner, dict) else None
            if kind == "text" and isinstance(inner, dict):
                parts.append({"type": "text", "text": _text(inner, here)})
            else:
                out.cannot(here, f"a '{kind}' block inside a tool result")
                parts.append(_placeholder(kind))
        result["content"] = parts
    return result


def _placeholder(kind: object) -> JSONObject:
    """What the view holds for a block it cannot express: the request is then refused for the
    providers that would be sent the view, and Anthropic's gets the client's block; the stages
    (limits, counts) still see a message with something in it."""
    return {"type": "text", "text": f"[{kind} block]"}


def _part(block: JSONObject, where: str, out: _View) -> JSONObject:
    """The content part of one user block."""
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": _text(block, where)}
    if kind == "image":
        return _image(block, where, out)
    if kind == "document":
        return _document(block, where, out)
    if kind == "tool_use":
        raise InvalidRequestError(
            f"{where}: a tool_use block belongs to an assistant message.", param=where
        )
    out.cannot(where, f"a '{kind}' block")
    return _placeholder(kind)


def _source(block: JSONObject, where: str) -> JSONObject:
    source = block.get("source")
    if not isinstance(source, dict) or not isinstance(source.get("type"), str):
        raise InvalidRequestError(
            f"{where}.source: an {block.get('type')} block needs a 'source' with a 'type'.",
            param=f"{where}.source",
        )
    return source


def _image(block: JSONObject, where: str, out: _View) -> JSONObject:
    source = _source(block, where)
    kind = source["type"]
    if kind == "base64" and isinstance(source.get("data"), str):
        url = f"data:{source.get('media_type', 'image/png')};base64,{source['data']}"
        return {"type": "image_url", "image_url": {"url": url}}
    if kind == "url" and isinstance(source.get("url"), str):
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    out.cannot(f"{where}.source", f"an image from a '{kind}' source")
    return _placeholder("image")


def _document(block: JSONObject, where: str, out: _View) -> JSONObject:
    citations = block.get("citations")
    if isinstance(citations, dict) and citations.get("enabled"):
        out.cannot(f"{where}.citations", "a document with citations")
    source = _source(block, where)
    kind = source["type"]
    title = block.get("title")
    if kind == "base64" and isinstance(source.get("data"), str):
        media = source.get("media_type", "application/pdf")
        name = title if isinstance(title, str) and title else "document.pdf"
        data = f"data:{media};base64,{source['data']}"
        return {"type": "file", "file": {"filename": name, "file_data": data}}
    if kind == "text" and isinstance(source.get("data"), str):
        return {"type": "text", "text": source["data"]}
    if kind == "content" and isinstance(source.get("content"), str | list):
        inner = source["content"]
        if isinstance(inner, str):
            return {"type": "text", "text": inner}
        texts = [b.get("text") for b in inner if isinstance(b, dict) and b.get("type") == "text"]
        if len(texts) == len(inner) and all(isinstance(t, str) for t in texts):
            return {"type": "text", "text": "\n".join(str(t) for t in texts)}
    out.cannot(f"{where}.source", f"a document from a '{kind}' source")
    return _placeholder("document")


# -- parameters and tools ----------------------------------------------------------------------


def _parameters(body: JSONObject, view: JSONObject, out: _View) -> None:
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            view[name] = body[name]
    if body.get("top_k") is not None:
        view["top_k"] = body["top_k"]
        out.cannot("top_k", "top_k (sampling from the k likeliest tokens)", OPENAI)
    stop = body.get("stop_sequences")
    if stop:
        view["stop"] = list(stop)
        if len(stop) > 4:
            out.cannot("stop_sequences", f"{len(stop)} stop sequences (OpenAI takes 4)", OPENAI)
        if len(stop) > 5:
            out.cannot("stop_sequences", f"{len(stop)} stop sequences (Gemini takes 5)", OTHERS)
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        view["user"] = metadata["user_id"]
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
        budget = thinking.get("budget_tokens")
        if thinking["type"] == "adaptive" or not isinstance(budget, int):
            view["reasoning_effort"] = "medium"
        elif budget < EFFORT_LOW_BELOW:
            view["reasoning_effort"] = "low"
        else:
            view["reasoning_effort"] = "medium" if budget < EFFORT_MEDIUM_BELOW else "high"


def _tools(body: JSONObject, view: JSONObject, out: _View) -> None:
    tools = []
    for j, tool in enumerate(body.get("tools") or ()):
        if tool.get("type") not in (None, "custom"):
            out.cannot(f"tools[{j}]", f"the server tool '{tool['type']}'")
            continue
        function: JSONObject = {"name": tool["name"]}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        function["parameters"] = tool.get("input_schema") or {"type": "object"}
        tools.append({"type": "function", "function": function})
    if tools:
        view["tools"] = tools
    choice = body.get("tool_choice")
    if not isinstance(choice, dict):
        return
    kind = choice.get("type")
    if kind == "none":
        if tools:
            view["tool_choice"] = "none"
        return
    if not tools:
        return
    if kind == "any":
        view["tool_choice"] = "required"
    elif kind == "tool":
        if not isinstance(choice.get("name"), str):
            raise InvalidRequestError(
                "tool_choice.name: a tool_choice of type 'tool' needs the tool's 'name'.",
                param="tool_choice.name",
            )
        view["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        view["tool_choice"] = "auto"
    if choice.get("disable_parallel_tool_use") is True:
        view["parallel_tool_calls"] = False
