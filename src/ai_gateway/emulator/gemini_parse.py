"""Parsing and validation of Gemini ``GenerateContentRequest`` bodies into the neutral prompt.

Field names are accepted in camelCase and in snake_case, as Google's JSON parser does.
Like the API it rejects missing ``contents``, empty ``parts``, roles other than ``user`` /
``model``, a function-response turn that does not follow a function-call turn (or answers
a different number of calls), a function-call turn that follows neither a user turn nor a
function-response turn, and invalid function names.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from ai_gateway.emulator import model as m
from ai_gateway.emulator.flow import EmulatorError

_FUNCTION_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_.:-]{0,63}")
_MIME_TYPES = ("text/plain", "application/json", "text/x.enum")
_IGNORED_PARTS = ("thought", "thoughtSignature", "executableCode", "codeExecutionResult")


def invalid(message: str) -> EmulatorError:
    return EmulatorError(400, message)


def field(obj: Any, name: str) -> Any:
    """``obj[name]`` in camelCase, falling back to its snake_case spelling."""
    if not isinstance(obj, dict):
        return None
    if name in obj:
        return obj[name]
    return obj.get(re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower())


def _part(part: Any, where: str) -> m.Part | None:
    if not isinstance(part, dict):
        raise invalid(f"Invalid value at '{where}' (Part), expected an object")
    if isinstance(field(part, "text"), str):
        return m.text_part(field(part, "text"))
    if field(part, "inlineData") is not None or field(part, "fileData") is not None:
        return m.image_part()
    call = field(part, "functionCall")
    if isinstance(call, dict) and isinstance(call.get("name"), str):
        args = call.get("args", {})
        return m.tool_call_part(call["name"], args if isinstance(args, dict) else {})
    response = field(part, "functionResponse")
    if isinstance(response, dict) and isinstance(response.get("name"), str):
        return m.tool_result_part(response.get("response", {}))
    if any(field(part, key) is not None for key in _IGNORED_PARTS):
        return None
    raise invalid(
        f"* GenerateContentRequest.{where}.data: required oneof field 'data' must have one "
        "initialized field\n"
    )


def _check_function_turns(turns: list[m.Turn], index: int) -> None:
    turn = turns[index]
    previous = turns[index - 1] if index else None
    calls = sum(p.kind == "tool_call" for p in turn.parts)
    results = sum(p.kind == "tool_result" for p in turn.parts)
    previous_calls = sum(p.kind == "tool_call" for p in previous.parts) if previous else 0
    if results and not previous_calls:
        raise invalid(
            "Please ensure that function response turn comes immediately after a function "
            "call turn."
        )
    if results and results != previous_calls:
        raise invalid(
            "Please ensure that the number of function response parts is equal to the number "
            "of function call parts of the function call turn."
        )
    if calls and (previous is None or previous.role != "user"):
        raise invalid(
            "Please ensure that function call turn comes immediately after a user turn or "
            "after a function response turn."
        )


def parse_contents(raw: Any) -> list[m.Turn]:
    if not raw:
        raise invalid("* GenerateContentRequest.contents: contents is not specified\n")
    if not isinstance(raw, list):
        raise invalid("Invalid value at 'contents' (type.googleapis.com/Content), expected a list")
    turns: list[m.Turn] = []
    for i, content in enumerate(raw):
        role = field(content, "role") or "user"
        if role not in ("user", "model", "function"):
            raise invalid("Please use a valid role: user, model.")
        parts = field(content, "parts")
        if not isinstance(parts, list) or not parts:
            raise invalid(
                f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.\n"
            )
        parsed = [_part(p, f"contents[{i}].parts[{j}]") for j, p in enumerate(parts)]
        kept = tuple(p for p in parsed if p is not None)
        turns.append(m.Turn("assistant" if role == "model" else "user", kept))
        _check_function_turns(turns, len(turns) - 1)
    return turns


def parse_system(raw: Any) -> list[m.Turn]:
    parts = field(raw, "parts")
    if not isinstance(parts, list):
        return []
    texts = [str(field(p, "text")) for p in parts if isinstance(field(p, "text"), str)]
    return [m.Turn("system", tuple(m.text_part(t) for t in texts))] if texts else []


def parse_tools(raw: Any) -> tuple[m.Tool, ...]:
    tools: list[m.Tool] = []
    for i, tool in enumerate(raw if isinstance(raw, list) else []):
        declarations = field(tool, "functionDeclarations") or []
        for k, declaration in enumerate(declarations if isinstance(declarations, list) else []):
            name = field(declaration, "name")
            if not isinstance(name, str) or not _FUNCTION_NAME.fullmatch(name):
                raise invalid(
                    f"* GenerateContentRequest.tools[{i}].function_declarations[{k}].name: "
                    "Invalid function name. Must start with a letter or an underscore. Must be "
                    "alphameric (a-z, A-Z, 0-9), underscores (_), dots (.), colons (:), or "
                    "dashes (-), with a maximum length of 64.\n"
                )
            schema = field(declaration, "parameters") or field(declaration, "parametersJsonSchema")
            tools.append(m.Tool(name, schema if isinstance(schema, dict) else {}))
    return tuple(tools)


def parse_tool_config(raw: Any, tools: tuple[m.Tool, ...]) -> m.ToolChoice:
    config = field(raw, "functionCallingConfig")
    mode = str(field(config, "mode") or "AUTO").upper()
    allowed = field(config, "allowedFunctionNames") or []
    if not isinstance(allowed, list) or not all(isinstance(n, str) for n in allowed):
        raise invalid(
            "Invalid value at 'tool_config.function_calling_config.allowed_function_names', "
            "expected a list of strings"
        )
    if not tools or mode == "NONE":
        return m.ToolChoice("none")
    if mode == "ANY":
        name = allowed[0] if isinstance(allowed, list) and allowed else None
        if name is not None and name not in {t.name for t in tools}:
            raise invalid(f"Function '{name}' in allowed_function_names is not declared.")
        return m.ToolChoice("required", name=name)
    if mode not in ("AUTO", "VALIDATED"):
        raise invalid(f"Invalid value at 'tool_config.function_calling_config.mode', {mode!r}")
    return m.ToolChoice("auto")


def _int(config: Any, name: str, low: int, high: int) -> int | None:
    value = field(config, name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid(
            f"* GenerateContentRequest.generation_config.{name}: must be in range "
            f"[{low}, {high}].\n"
        )
    return value


def parse_request(body: dict[str, Any]) -> m.Prompt:
    turns = parse_system(field(body, "systemInstruction")) + parse_contents(field(body, "contents"))
    config = field(body, "generationConfig") or {}
    stop = field(config, "stopSequences") or []
    if not isinstance(stop, list) or len(stop) > 5 or not all(isinstance(s, str) for s in stop):
        raise invalid(
            "* GenerateContentRequest.generation_config.stop_sequences: at most 5 stop "
            "sequences of type string are allowed.\n"
        )
    mime = field(config, "responseMimeType") or "text/plain"
    if mime not in _MIME_TYPES:
        raise invalid(
            "* GenerateContentRequest.generation_config.response_mime_type: allowed mimetypes "
            "are `text/plain`, `application/json` and `text/x.enum`.\n"
        )
    schema = field(config, "responseSchema") or field(config, "responseJsonSchema")
    if schema is not None and mime == "text/plain":
        raise invalid(
            "* GenerateContentRequest.generation_config.response_mime_type: it must be set to "
            "`application/json` or `text/x.enum` when response_schema is set.\n"
        )
    tools = parse_tools(field(body, "tools"))
    return m.Prompt(
        turns=tuple(turns),
        tools=tools,
        tool_choice=parse_tool_config(field(body, "toolConfig"), tools),
        max_tokens=_int(config, "maxOutputTokens", 1, 10**9),
        stop=tuple(stop),
        json_output=mime == "application/json",
        output_schema=schema if isinstance(schema, dict) else None,
        choices=_int(config, "candidateCount", 1, 8) or 1,
    )


def not_found(model: str, method: str) -> EmulatorError:
    return EmulatorError(
        404,
        f"models/{model} is not found for API version v1beta, or is not supported for "
        f"{method}. Call ListModels to see the list of available models and their supported "
        "methods.",
    )


def split_target(request: web.Request) -> tuple[str, str]:
    """``gemini-2.0-flash:generateContent`` -> (model, method)."""
    model, _, method = request.match_info["target"].rpartition(":")
    return model.removeprefix("models/"), method
