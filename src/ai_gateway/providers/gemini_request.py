"""An OpenAI Chat Completions request as a Gemini ``GenerateContentRequest`` (pure, no I/O).

Messages (Gemini API reference, ``v1beta``, ``Content``/``Part``):

- ``system`` and ``developer`` messages, wherever they appear, become ``systemInstruction.parts``
  in order (Gemini has one system instruction; it takes text only).
- ``user`` -> role ``user``, ``assistant`` -> role ``model``; consecutive turns of one role are
  merged into one ``Content``. ``tool`` (and legacy ``function``) results become
  ``functionResponse{name, response}`` parts of a ``user`` turn; the name is that of the earlier
  assistant tool call with the same id, ``response`` the result when it is a JSON object, else
  ``{"result": <content>}``.
- Content parts: ``text``; ``image_url`` data URL -> ``inlineData{mimeType, data}``, http(s) URL
  -> ``fileData{fileUri, mimeType (when the extension tells it)}``; ``input_audio`` ->
  ``inlineData`` (audio/wav, audio/mp3); ``file`` with ``file_data`` (a data URL) -> ``inlineData``.
  Anything else (OpenAI file ids, other URL schemes) is a 400 naming the part.
- Assistant ``tool_calls`` -> ``functionCall{name, args}`` with ``args`` the parsed arguments (a
  JSON object; empty arguments count as ``{}``); a ``thoughtSignature`` that an earlier Gemini
  answer returned (as ``extra_content.google.thought_signature``) is passed back, as Gemini 3
  requires. Empty text parts are left out (Gemini rejects them) and a turn left with no parts
  is dropped.

``generationConfig``: ``maxOutputTokens`` (``max_completion_tokens``, else ``max_tokens``),
``temperature``, ``topP``, ``topK`` (non-standard ``top_k``), ``stopSequences``,
``candidateCount`` (``n``), ``presencePenalty``, ``frequencyPenalty``, ``seed``;
``response_format`` ``json_object`` -> ``responseMimeType: application/json``, ``json_schema``
-> the same plus ``responseJsonSchema`` (the reference's field for standard JSON Schema; the older
``responseSchema`` takes only an OpenAPI subset). Tools -> ``functionDeclarations`` with the
JSON Schema in ``parametersJsonSchema`` (``parameters`` is the OpenAPI subset and rejects common
JSON Schema keywords such as ``additionalProperties``); ``tool_choice`` ->
``toolConfig.functionCallingConfig`` (auto -> AUTO, required -> ANY, none -> NONE, a named
function -> ANY + ``allowedFunctionNames``).

Dropped, having no Gemini equivalent: ``user``, message ``name``, ``parallel_tool_calls``,
``logprobs``/``top_logprobs``, ``logit_bias``, ``strict`` (Gemini always follows a given schema),
``store``, ``metadata``, ``service_tier``, ``reasoning_effort``, ``modalities``/``audio``,
``prediction``, ``web_search_options``, ``stream_options`` (usage is always reported). No
``safetySettings`` are sent: Google's defaults apply.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterable
from typing import Any

import orjson

from ai_gateway.errors import InvalidRequestError
from ai_gateway.providers.base import JSONObject
from ai_gateway.schemas.chat import (
    ChatCompletionRequest,
    ContentPart,
    Message,
    NamedToolChoice,
    ResponseFormat,
)

_AUDIO_MIME = {"wav": "audio/wav", "mp3": "audio/mp3"}
_MODES = {"auto": "AUTO", "required": "ANY", "none": "NONE"}


def _invalid(where: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"{where}: {message}", param=where)


def _data_url(url: str, where: str) -> JSONObject:
    """``data:<mime>;base64,<data>`` -> ``{"inlineData": {mimeType, data}}``."""
    header, sep, data = url[5:].partition(",")
    mime, _, encoding = header.partition(";")
    if not sep or encoding.lower() != "base64" or not mime or not data:
        raise _invalid(where, "a data URL must look like 'data:<mime type>;base64,<data>'")
    return {"inlineData": {"mimeType": mime, "data": data}}


def _media_url(url: str, where: str) -> JSONObject:
    if url.startswith("data:"):
        return _data_url(url, where)
    if url.startswith(("https://", "http://")):
        file_data: JSONObject = {"fileUri": url}
        mime = mimetypes.guess_type(url.split("?", 1)[0], strict=False)[0]
        if mime:
            file_data["mimeType"] = mime
        return {"fileData": file_data}
    raise _invalid(where, "Gemini deployments take images as data URLs or http(s) URLs only")


def _part(part: ContentPart, where: str) -> JSONObject | None:
    extra = part.model_extra or {}
    if part.type == "text":
        return {"text": part.text} if part.text else None
    if part.type == "refusal":
        return {"text": part.refusal} if part.refusal else None
    if part.type == "image_url" and part.image_url is not None:
        return _media_url(part.image_url.url, f"{where}.image_url.url")
    if part.type == "input_audio":
        audio = extra.get("input_audio")
        if isinstance(audio, dict) and isinstance(audio.get("data"), str):
            mime = _AUDIO_MIME.get(str(audio.get("format")))
            if mime is not None:
                return {"inlineData": {"mimeType": mime, "data": audio["data"]}}
        raise _invalid(where, "'input_audio' needs base64 'data' and a 'format' of wav or mp3")
    if part.type == "file":
        file = extra.get("file")
        data = file.get("file_data") if isinstance(file, dict) else None
        if isinstance(data, str) and data.startswith("data:"):
            return _data_url(data, f"{where}.file.file_data")
        raise _invalid(
            where, "Gemini deployments take files as 'file_data' data URLs, not OpenAI file ids"
        )
    raise _invalid(where, f"content parts of type '{part.type}' cannot be sent to Gemini")


def _content_parts(message: Message, where: str) -> list[JSONObject]:
    content = message.content
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts = (_part(p, f"{where}.content[{i}]") for i, p in enumerate(content))
    return [p for p in parts if p is not None]


def _text_only(message: Message, where: str) -> str:
    content = message.content
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for i, part in enumerate(content):
        if part.type != "text":
            raise _invalid(f"{where}.content[{i}]", "only text parts are allowed here for Gemini")
        texts.append(part.text or "")
    return "".join(texts)


def _arguments(raw: str, where: str) -> JSONObject:
    if not raw.strip():
        return {}
    try:
        args = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _invalid(where, "the tool call arguments are not valid JSON") from None
    if not isinstance(args, dict):
        raise _invalid(where, "the tool call arguments must be a JSON object")
    return args


def _signature(extra: dict[str, Any] | None) -> str | None:
    """A Gemini thought signature the client returned with a tool call, if any."""
    content = (extra or {}).get("extra_content")
    google = content.get("google") if isinstance(content, dict) else None
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    return signature if isinstance(signature, str) and signature else None


def _model_parts(message: Message, where: str, names: dict[str, str]) -> list[JSONObject]:
    parts = _content_parts(message, where)
    extra = message.model_extra or {}
    refusal = extra.get("refusal")
    if not parts and isinstance(refusal, str) and refusal:
        parts.append({"text": refusal})
    for i, call in enumerate(message.tool_calls or []):
        at = f"{where}.tool_calls[{i}].function.arguments"
        part: JSONObject = {
            "functionCall": {
                "name": call.function.name,
                "args": _arguments(call.function.arguments, at),
            }
        }
        signature = _signature(call.model_extra)
        if signature is not None:
            part["thoughtSignature"] = signature
        parts.append(part)
        names[call.id] = call.function.name
    legacy = extra.get("function_call")
    if isinstance(legacy, dict) and isinstance(legacy.get("name"), str):
        args = legacy.get("arguments")
        at = f"{where}.function_call.arguments"
        parts.append(
            {"functionCall": {"name": legacy["name"], "args": _arguments(str(args or ""), at)}}
        )
    return parts


def _tool_result(message: Message, where: str, names: dict[str, str]) -> JSONObject:
    if message.role == "tool":
        name = names.get(message.tool_call_id or "")
        if name is None:
            raise _invalid(
                f"{where}.tool_call_id",
                f"'{message.tool_call_id}' does not match any earlier assistant tool call",
            )
    elif message.name:
        name = message.name
    else:
        raise _invalid(f"{where}.name", "a 'function' message needs the function's 'name'")
    content = _text_only(message, where)
    try:
        parsed = orjson.loads(content)
    except orjson.JSONDecodeError:
        parsed = None
    response = parsed if isinstance(parsed, dict) else {"result": content}
    return {"functionResponse": {"name": name, "response": response}}


def contents(messages: Iterable[Message]) -> tuple[list[JSONObject], list[JSONObject]]:
    """(systemInstruction parts, contents) for a conversation."""
    system: list[JSONObject] = []
    turns: list[JSONObject] = []
    names: dict[str, str] = {}  # tool call id -> function name
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if message.role in ("system", "developer"):
            text = _text_only(message, where)
            if text:
                system.append({"text": text})
            continue
        if message.role == "assistant":
            role, parts = "model", _model_parts(message, where, names)
        elif message.role in ("tool", "function"):
            role, parts = "user", [_tool_result(message, where, names)]
        else:
            role, parts = "user", _content_parts(message, where)
        if not parts:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["parts"].extend(parts)
        else:
            turns.append({"role": role, "parts": parts})
    return system, turns


def _response_format(fmt: ResponseFormat | None, config: JSONObject) -> None:
    if fmt is None or fmt.type == "text":
        return
    config["responseMimeType"] = "application/json"
    if fmt.type == "json_schema" and fmt.json_schema and fmt.json_schema.schema_ is not None:
        config["responseJsonSchema"] = fmt.json_schema.schema_


def generation_config(request: ChatCompletionRequest) -> JSONObject:
    config: JSONObject = {}
    max_tokens = request.max_completion_tokens or request.max_tokens
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.top_p is not None:
        config["topP"] = request.top_p
    top_k = (request.model_extra or {}).get("top_k")
    if isinstance(top_k, int) and not isinstance(top_k, bool):
        config["topK"] = top_k
    if request.stop is not None:
        stop = [request.stop] if isinstance(request.stop, str) else list(request.stop)
        if stop:
            config["stopSequences"] = stop
    if request.n is not None:
        config["candidateCount"] = request.n
    if request.presence_penalty is not None:
        config["presencePenalty"] = request.presence_penalty
    if request.frequency_penalty is not None:
        config["frequencyPenalty"] = request.frequency_penalty
    if request.seed is not None:
        config["seed"] = request.seed
    _response_format(request.response_format, config)
    return config


def _declaration(name: str, description: str | None, schema: object) -> JSONObject:
    declaration: JSONObject = {"name": name}
    if description:
        declaration["description"] = description
    if isinstance(schema, dict):
        declaration["parametersJsonSchema"] = schema
    return declaration


def _declarations(request: ChatCompletionRequest) -> list[JSONObject]:
    declarations = []
    for i, tool in enumerate(request.tools or []):
        function = tool.function
        if tool.type != "function" or function is None:
            raise _invalid(f"tools[{i}]", f"tools of type '{tool.type}' cannot be sent to Gemini")
        declarations.append(_declaration(function.name, function.description, function.parameters))
    legacy = (request.model_extra or {}).get("functions")
    for i, function in enumerate(legacy if isinstance(legacy, list) else []):
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _invalid(f"functions[{i}]", "each function needs a 'name'")
        description = function.get("description")
        declarations.append(
            _declaration(
                function["name"],
                description if isinstance(description, str) else None,
                function.get("parameters"),
            )
        )
    return declarations


def _calling_config(request: ChatCompletionRequest) -> JSONObject | None:
    choice: object = request.tool_choice
    if choice is None:  # the legacy `function_call` request field
        choice = (request.model_extra or {}).get("function_call")
        if isinstance(choice, dict) and isinstance(choice.get("name"), str):
            choice = NamedToolChoice.model_validate(
                {"type": "function", "function": {"name": choice["name"]}}
            )
    if isinstance(choice, str) and choice in _MODES:
        return {"mode": _MODES[choice]}
    if isinstance(choice, NamedToolChoice):
        return {"mode": "ANY", "allowedFunctionNames": [choice.function.name]}
    return None


def build_request(request: ChatCompletionRequest) -> JSONObject:
    """The ``generateContent`` / ``streamGenerateContent`` body for a chat request."""
    system, turns = contents(request.messages)
    if not turns:
        raise _invalid(
            "messages",
            "Gemini needs at least one user, assistant or tool message with content besides "
            "system messages",
        )
    body: JSONObject = {"contents": turns}
    if system:
        body["systemInstruction"] = {"parts": system}
    config = generation_config(request)
    if config:
        body["generationConfig"] = config
    declarations = _declarations(request)
    if declarations:
        body["tools"] = [{"functionDeclarations": declarations}]
        calling = _calling_config(request)
        if calling is not None:
            body["toolConfig"] = {"functionCallingConfig": calling}
    return body
