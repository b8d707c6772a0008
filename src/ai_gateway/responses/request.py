"""A Responses request as the gateway's chat request (the parser's half of the Responses API).
Pure: no I/O, no state; the earlier turns of a conversation are given to it.

    instructions              a system message, first (earlier turns' instructions are not
                              carried on, as OpenAI documents)
    earlier turns, input      messages (responses/items.py)
    tools: function           {type: function, function: {name, description, parameters, strict}}
    tools: file_search        kept: the retrieval stage searches the caller's vector stores
    tool_choice               none/auto/required as they are; {type: function, name} named;
                              allowed_tools: the tools it lists, with its mode
    text.format               response_format (json_schema, json_object; text: none)
    reasoning.effort          reasoning_effort
    max_output_tokens         max_completion_tokens
    temperature, top_p, parallel_tool_calls   as they are
    user / safety_identifier  user
    truncation: auto          context_strategy truncate-oldest (docs/routing.md)
    include logprobs / top_logprobs           logprobs, top_logprobs
    prompt                    the gateway's template (`version` a number or a label)
    cache, context, rag, context_strategy     the gateway's own fields, as on chat completions

Refused with a 400 naming the field: `background: true` (not built), `conversation` (use
`previous_response_id`), tools other than function and file_search, and an input that leaves
nothing to send. `metadata` and `store` are the gateway's (never sent upstream).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ai_gateway.errors import InvalidRequestError
from ai_gateway.providers.base import JSONObject
from ai_gateway.responses import items as it
from ai_gateway.responses.records import JSONItem, Turn
from ai_gateway.schemas.responses import ResponsesRequest

FILE_SEARCH_RESULTS = "file_search_call.results"
LOGPROBS = "message.output_text.logprobs"
GATEWAY_FIELDS = ("cache", "context", "rag", "context_strategy")
UNSUPPORTED = {
    "conversation": "conversations are not built in this gateway; chain responses with "
    "'previous_response_id' instead",
    "background": "background responses are not built in this gateway; send the request without "
    "'background' (use 'stream': true for a long answer)",
}


@dataclass(frozen=True, slots=True)
class ResponsesCall:
    """What one Responses request becomes: the chat body to run through the chain, the input
    items to keep, and what the Response object repeats of the request (`echo`)."""

    chat: JSONObject
    input_items: list[JSONItem]
    echo: JSONObject
    stream: bool = False
    store: bool = True
    file_search: bool = False
    include: frozenset[str] = field(default_factory=frozenset)


def translate(
    body: JSONObject, parsed: ResponsesRequest, turns: list[Turn], store: bool
) -> ResponsesCall:
    """`body` (the client's JSON) and its typed view as a chat request; `turns`: the earlier
    responses of the conversation, oldest first; `store`: whether the response will be kept."""
    for name, why in UNSUPPORTED.items():
        if body.get(name) not in (None, False):
            raise InvalidRequestError(f"'{name}': {why}.", param=name, code="unsupported_parameter")
    input_items = it.normalize(parsed.input)
    history: list[JSONItem] = []
    for turn in turns:
        history += turn.input_items
        history += turn.output
    messages = it.messages(history + input_items)
    if parsed.instructions:
        messages.insert(0, {"role": "system", "content": parsed.instructions})
    if not messages and parsed.prompt is None:
        raise InvalidRequestError("Missing required parameter: 'input'.", param="input")
    include = frozenset(parsed.include or ())
    chat: JSONObject = {"messages": messages}
    if parsed.model is not None:
        chat["model"] = parsed.model
    tools, file_search = _tools(body.get("tools"))
    choice = _tool_choice(body.get("tool_choice"), tools)
    if isinstance(choice, tuple):
        tools, choice = choice
    if tools:
        chat["tools"] = tools
        if choice is not None:
            chat["tool_choice"] = choice
    _parameters(chat, body, parsed, include)
    if parsed.prompt is not None:
        chat["prompt"] = _prompt(body["prompt"])
    return ResponsesCall(
        chat=chat,
        input_items=input_items,
        echo=_echo(body, parsed, store),
        stream=bool(parsed.stream),
        store=store,
        file_search=file_search,
        include=include,
    )


def _parameters(
    chat: JSONObject, body: JSONObject, parsed: ResponsesRequest, include: frozenset[str]
) -> None:
    if parsed.stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    fmt = parsed.text.format if parsed.text is not None else None
    if fmt is not None and fmt.type == "json_object":
        chat["response_format"] = {"type": "json_object"}
    elif fmt is not None and fmt.type == "json_schema":
        spec: JSONObject = {"name": fmt.name, "schema": fmt.schema_}
        if fmt.description is not None:
            spec["description"] = fmt.description
        if fmt.strict is not None:
            spec["strict"] = fmt.strict
        chat["response_format"] = {"type": "json_schema", "json_schema": spec}
    if parsed.reasoning is not None and parsed.reasoning.effort is not None:
        chat["reasoning_effort"] = parsed.reasoning.effort
    if parsed.max_output_tokens is not None:
        chat["max_completion_tokens"] = parsed.max_output_tokens
    for name in ("temperature", "top_p", "parallel_tool_calls"):
        if body.get(name) is not None:
            chat[name] = body[name]
    user = parsed.safety_identifier or parsed.user
    if user is not None:
        chat["user"] = user
    if LOGPROBS in include or parsed.top_logprobs:
        chat["logprobs"] = True
        if parsed.top_logprobs:
            chat["top_logprobs"] = parsed.top_logprobs
    if parsed.truncation == "auto":
        chat["context_strategy"] = "truncate-oldest"
    for name in GATEWAY_FIELDS:
        if body.get(name) is not None:
            chat[name] = body[name]


def _tools(raw: Any) -> tuple[list[JSONObject], bool]:
    """The chat tools, and whether a file_search tool is among them."""
    tools: list[JSONObject] = []
    file_search = False
    for n, tool in enumerate(raw or ()):
        where = f"tools[{n}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind == "function":
            name = tool.get("name")
            if not isinstance(name, str) or not name:
                raise InvalidRequestError(
                    f"Missing required parameter: '{where}.name'.", param=f"{where}.name"
                )
            function: JSONObject = {"name": name}
            for key in ("description", "parameters", "strict"):
                if tool.get(key) is not None:
                    function[key] = tool[key]
            tools.append({"type": "function", "function": function})
        elif kind == "file_search":
            file_search = True
            tools.append({k: v for k, v in tool.items() if v is not None})
        else:
            raise InvalidRequestError(
                f"Invalid value for '{where}.type': {str(kind)[:32]!r} tools are not supported "
                "by this gateway; the tools are 'function' and 'file_search' (on the gateway's "
                "vector stores).",
                param=f"{where}.type",
                code="unsupported_tool",
            )
    return tools, file_search


def _tool_choice(
    raw: Any, tools: list[JSONObject]
) -> str | JSONObject | tuple[list[JSONObject], str] | None:
    """The chat tool_choice; for `allowed_tools`, the tools it allows and its mode."""
    if raw is None or isinstance(raw, str):
        return raw
    kind = raw.get("type")
    if kind == "function" and isinstance(raw.get("name"), str):
        return {"type": "function", "function": {"name": raw["name"]}}
    if kind == "file_search":
        return None  # the search always runs; the model is not asked to call anything
    if kind == "allowed_tools" and isinstance(raw.get("tools"), list):
        allowed = {t.get("name") for t in raw["tools"] if isinstance(t, dict)}
        kept = [t for t in tools if t["type"] != "function" or t["function"]["name"] in allowed]
        mode = raw.get("mode") if raw.get("mode") in ("auto", "required") else "auto"
        return kept, mode
    raise InvalidRequestError(
        "Invalid value for 'tool_choice': use 'none', 'auto', 'required', "
        '{"type": "function", "name": ...}, {"type": "file_search"} or '
        '{"type": "allowed_tools", "mode": ..., "tools": [...]}.',
        param="tool_choice",
    )


def _prompt(raw: JSONObject) -> JSONObject:
    """OpenAI's prompt reference as the gateway's: a numeric version is a version, any other a
    label; variables given as `input_text` parts become their text."""
    ref: JSONObject = {"id": raw["id"]}
    version = raw.get("version")
    if isinstance(version, str):
        if version.isdigit():
            ref["version"] = int(version)
        else:
            ref["label"] = version
    variables: JSONObject = {}
    for name, value in (raw.get("variables") or {}).items():
        if isinstance(value, dict) and value.get("type") == "input_text":
            value = value.get("text")
        if not isinstance(value, str):
            raise InvalidRequestError(
                f"Invalid value for 'prompt.variables.{name}': a variable is a string or an "
                "input_text part in this gateway.",
                param=f"prompt.variables.{name}",
            )
        variables[name] = value
    if variables:
        ref["variables"] = variables
    return ref


def _echo(body: JSONObject, parsed: ResponsesRequest, store: bool) -> JSONObject:
    """The request's side of the Response object."""
    reasoning = body.get("reasoning") if isinstance(body.get("reasoning"), dict) else None
    text = body.get("text") if isinstance(body.get("text"), dict) else None
    return {
        "instructions": parsed.instructions,
        "metadata": parsed.metadata or {},
        "parallel_tool_calls": parsed.parallel_tool_calls is not False,
        "temperature": parsed.temperature,
        "top_p": parsed.top_p,
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": list(body.get("tools") or ()),
        "text": {"format": {"type": "text"}, **(text or {})},
        "reasoning": {"effort": None, "summary": None, **(reasoning or {})},
        "max_output_tokens": parsed.max_output_tokens,
        "previous_response_id": parsed.previous_response_id,
        "prompt": body.get("prompt"),
        "store": store,
        "background": False,
        "truncation": parsed.truncation or "disabled",
        "top_logprobs": parsed.top_logprobs,
        "user": parsed.user,
        "safety_identifier": parsed.safety_identifier,
        "service_tier": body.get("service_tier") or "default",
    }
