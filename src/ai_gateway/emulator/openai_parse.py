"""Parsing and validation of OpenAI chat completion requests into the neutral prompt.

Validation follows OpenAI's answers: 400 ``invalid_request_error`` with ``param`` and
``code`` for malformed bodies, tool messages that answer no ``tool_calls``, assistant
``tool_calls`` left unanswered, ``json_object`` without the word "json" in the messages,
``stream_options`` without ``stream``; 404 ``model_not_found`` for unknown models.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ai_gateway.emulator import catalog
from ai_gateway.emulator import model as m
from ai_gateway.emulator.flow import EmulatorError

_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_ROLE_MAP: dict[str, m.Role] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
    "function": "tool",
}
_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def invalid(message: str, param: str | None = None, code: str | None = None) -> EmulatorError:
    return EmulatorError(400, message, param=param, code=code)


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "null" if value is None else "number"
    )


def _content(raw: Any, where: str) -> list[m.Part]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [m.text_part(raw)]
    if not isinstance(raw, list):
        raise invalid(
            f"Invalid type for '{where}': expected one of a string or array of objects, "
            f"but got {_type_name(raw)} instead.",
            where,
            "invalid_type",
        )
    parts: list[m.Part] = []
    for j, item in enumerate(raw):
        loc = f"{where}[{j}]"
        kind = item.get("type") if isinstance(item, dict) else None
        if kind in ("text", "refusal"):
            value = item.get(kind)
            if not isinstance(value, str):
                raise invalid(
                    f"Missing required parameter: '{loc}.{kind}'.",
                    f"{loc}.{kind}",
                    "missing_required_parameter",
                )
            parts.append(m.text_part(value))
        elif kind in ("image_url", "input_audio", "file"):
            parts.append(m.image_part())
        else:
            raise invalid(
                f"Invalid value: '{kind}'. Supported values are: 'text', 'image_url', "
                "'input_audio', 'refusal', and 'file'.",
                f"{loc}.type",
                "invalid_value",
            )
    return parts


def _tool_calls(raw: Any, where: str) -> list[tuple[str, m.Part]]:
    if raw is None:
        return []
    calls: list[tuple[str, m.Part]] = []
    for j, call in enumerate(raw if isinstance(raw, list) else [None]):
        function = call.get("function") if isinstance(call, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        arguments = function.get("arguments", "") if isinstance(function, dict) else None
        if not isinstance(call, dict) or not isinstance(call.get("id"), str):
            raise invalid(f"Missing required parameter: '{where}[{j}].id'.", f"{where}[{j}].id")
        if not isinstance(name, str) or not isinstance(arguments, str):
            raise invalid(f"Missing required parameter: '{where}[{j}].function'.")
        try:
            parsed = json.loads(arguments) if arguments else {}
        except ValueError:
            parsed = {"_raw": arguments}
        calls.append(
            (call["id"], m.tool_call_part(name, parsed if isinstance(parsed, dict) else {}))
        )
    return calls


def _unanswered(pending: list[str]) -> EmulatorError:
    return invalid(
        "An assistant message with 'tool_calls' must be followed by tool messages responding "
        "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
        + ", ".join(pending),
        "messages",
    )


def parse_messages(raw: Any) -> tuple[m.Turn, ...]:
    if raw is None:
        raise invalid(
            "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
        )
    if not isinstance(raw, list) or not raw:
        raise invalid(
            "Invalid 'messages': expected a non-empty array of message objects.",
            "messages",
            "empty_array" if raw == [] else "invalid_type",
        )
    turns: list[m.Turn] = []
    pending: list[str] = []
    for i, msg in enumerate(raw):
        where = f"messages[{i}]"
        role = msg.get("role") if isinstance(msg, dict) else None
        if role not in _ROLES or not isinstance(msg, dict):
            raise invalid(
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', "
                "'function', 'tool', and 'developer'.",
                f"{where}.role",
                "invalid_value",
            )
        if pending and role != "tool":
            raise _unanswered(pending)
        parts = _content(msg.get("content"), f"{where}.content")
        calls = (
            _tool_calls(msg.get("tool_calls"), f"{where}.tool_calls") if role == "assistant" else []
        )
        if msg.get("content") is None and not calls:
            raise invalid(
                "Invalid value for 'content': expected a string, got null.", f"{where}.content"
            )
        if role == "tool":
            call_id = msg.get("tool_call_id")
            if not isinstance(call_id, str):
                raise invalid(
                    "Missing parameter 'tool_call_id': messages with role 'tool' must have a "
                    "'tool_call_id'.",
                    f"{where}.tool_call_id",
                )
            if call_id not in pending:
                raise invalid(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    f"{where}.role",
                )
            pending.remove(call_id)
        if role in ("tool", "function"):
            parts = [m.tool_result_part(" ".join(p.text for p in parts))]
        pending.extend(call_id for call_id, _ in calls)
        turns.append(m.Turn(_ROLE_MAP[role], tuple(parts + [part for _, part in calls])))
    if pending:
        raise _unanswered(pending)
    return tuple(turns)


def parse_tools(raw: Any) -> tuple[m.Tool, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        raise invalid("Invalid 'tools': expected a non-empty array of tools.", "tools")
    tools: list[m.Tool] = []
    for j, tool in enumerate(raw):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise invalid(
                f"Invalid value: '{kind}'. Supported values are: 'function' and 'custom'.",
                f"tools[{j}].type",
                "invalid_value",
            )
        function = tool.get("function")
        if not isinstance(function, dict):
            raise invalid(
                f"Missing required parameter: 'tools[{j}].function'.",
                f"tools[{j}].function",
                "missing_required_parameter",
            )
        name = function.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
            raise invalid(
                f"Invalid 'tools[{j}].function.name': string does not match pattern. Expected "
                "a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                f"tools[{j}].function.name",
                "invalid_value",
            )
        parameters = function.get("parameters", {})
        if not isinstance(parameters, dict):
            raise invalid(
                f"Invalid type for 'tools[{j}].function.parameters': expected an object.",
                f"tools[{j}].function.parameters",
                "invalid_type",
            )
        tools.append(m.Tool(name, parameters))
    return tuple(tools)


def parse_tool_choice(raw: Any, tools: tuple[m.Tool, ...], parallel: bool) -> m.ToolChoice:
    if raw is None:
        return m.ToolChoice("auto" if tools else "none", parallel=parallel)
    if not tools:
        raise invalid(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are "
            "specified.",
            "tool_choice",
        )
    if raw in ("none", "auto", "required"):
        return m.ToolChoice(raw, parallel=parallel)
    function = raw.get("function") if isinstance(raw, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(raw, dict) or raw.get("type") != "function" or not isinstance(name, str):
        raise invalid(
            "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or a "
            "function object.",
            "tool_choice",
            "invalid_value",
        )
    if name not in {t.name for t in tools}:
        raise invalid(
            f"Invalid value for 'tool_choice': function '{name}' is not among the 'tools'.",
            "tool_choice",
            "invalid_value",
        )
    return m.ToolChoice("required", name=name, parallel=parallel)


def _int(body: dict[str, Any], key: str, low: int, high: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid(
            f"Invalid '{key}': expected an integer between {low} and {high}.", key, "invalid_value"
        )
    return value


def _stop(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        return (raw,)
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        raise invalid("Invalid type for 'stop': expected a string or an array of strings.", "stop")
    if len(raw) > 4:
        raise invalid(
            "Invalid 'stop': array too long. Expected an array with maximum length 4, but got "
            f"an array with length {len(raw)} instead.",
            "stop",
            "array_above_max_length",
        )
    return tuple(raw)


def _response_format(raw: Any, turns: tuple[m.Turn, ...]) -> tuple[bool, dict[str, Any] | None]:
    kind = raw.get("type") if isinstance(raw, dict) else None
    if raw is None or kind == "text":
        return False, None
    if kind == "json_object":
        if not any("json" in turn.text.lower() for turn in turns):
            raise invalid(
                "'messages' must contain the word 'json' in some form, to use 'response_format' "
                "of type 'json_object'.",
                "messages",
            )
        return True, None
    if kind == "json_schema":
        spec = raw.get("json_schema") if isinstance(raw, dict) else None
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise invalid(
                "Missing required parameter: 'response_format.json_schema.name'.",
                "response_format.json_schema.name",
                "missing_required_parameter",
            )
        schema = spec.get("schema", {})
        return True, schema if isinstance(schema, dict) else {}
    raise invalid(
        f"Invalid value: '{kind}'. Supported values are: 'json_object', 'json_schema', and 'text'.",
        "response_format.type",
        "invalid_value",
    )


@dataclass(frozen=True)
class ChatRequest:
    model: str
    prompt: m.Prompt
    stream: bool
    include_usage: bool
    forced_tool: bool


def parse_chat(body: dict[str, Any]) -> ChatRequest:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("you must provide a model parameter", "model")
    turns = parse_messages(body.get("messages"))
    if catalog.find("openai", model) is None:
        raise EmulatorError(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            code="model_not_found",
        )
    tools = parse_tools(body.get("tools"))
    choice = parse_tool_choice(
        body.get("tool_choice"), tools, body.get("parallel_tool_calls", True) is not False
    )
    stream = body.get("stream") is True
    options = body.get("stream_options")
    if options is not None and not stream:
        raise invalid(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
        )
    json_output, schema = _response_format(body.get("response_format"), turns)
    max_tokens = _int(body, "max_completion_tokens", 1, 10**9)
    if max_tokens is None:
        max_tokens = _int(body, "max_tokens", 1, 10**9)
    prompt = m.Prompt(
        turns=turns,
        tools=tools,
        tool_choice=choice,
        max_tokens=max_tokens,
        stop=_stop(body.get("stop")),
        json_output=json_output,
        output_schema=schema,
        choices=_int(body, "n", 1, 128) or 1,
    )
    return ChatRequest(
        model=model,
        prompt=prompt,
        stream=stream,
        include_usage=stream and isinstance(options, dict) and options.get("include_usage") is True,
        forced_tool=choice.name is not None,
    )
