"""OpenAI Chat Completions request -> Anthropic Messages request. Pure: no I/O, no state.

Messages
    ``system`` and ``developer`` messages, wherever they stand, become the top-level ``system``
    (a list of text blocks, in order). ``user`` and ``assistant`` messages become turns;
    ``tool`` messages become ``tool_result`` blocks in a user turn. Consecutive turns of the
    same role are merged into one (Anthropic expects alternating turns), and inside a user turn
    the ``tool_result`` blocks are moved ahead of the other blocks, keeping their order (the API
    requires tool results first). Assistant ``tool_calls`` become ``tool_use`` blocks whose
    ``input`` is the parsed JSON of ``function.arguments`` (an empty string counts as ``{}``).
    An assistant message with no content and no tool calls says nothing and is left out; a user
    turn left empty is a 400, since Anthropic rejects empty turns.

Content parts
    See ``anthropic_content``: text, images (base64 or URL) and PDF files; an assistant's
    ``refusal`` parts become text; anything else is a 400 rather than a silent loss.

Parameters
    ``max_tokens`` is always sent: ``max_completion_tokens``, else ``max_tokens``, else the
    model registry's ``max_output_tokens`` for the upstream model, else
    :data:`DEFAULT_MAX_TOKENS`. ``temperature`` (Anthropic accepts 0-1; above 1 is a 400, not
    clamped), ``top_p``, ``top_k`` (a common non-OpenAI extension), ``stop`` ->
    ``stop_sequences``, ``user`` -> ``metadata.user_id``. Tools map to
    ``{name, description, input_schema}``; ``tool_choice`` auto/required/none/named maps to
    ``{type: auto|any|none|tool}`` and ``parallel_tool_calls: false`` to
    ``disable_parallel_tool_use: true``.

``response_format`` (``json_object`` / ``json_schema``)
    Sent as a forced tool, :data:`RESPONSE_TOOL`, whose ``input_schema`` is the requested schema
    (any object for ``json_object``); the response side turns that tool's input back into the
    message content, and streams its argument fragments as content deltas. This works on every
    Claude model, unlike the native ``output_config.format``, which Anthropic documents as
    generally available only for recent models. Without client tools (or with
    ``tool_choice: none``) the response tool is forced; with client tools and ``auto`` the
    model must call some tool (``any``): a real tool call, or the final JSON answer; a
    ``required`` or named ``tool_choice`` is kept as it is. The ``strict`` flags of tools and
    schemas are dropped (strict tool use is not on every model).

Dropped, having no Anthropic equivalent: ``logprobs``, ``top_logprobs``, ``seed``,
``presence_penalty``, ``frequency_penalty``, ``logit_bias``, ``store``, ``metadata``,
``service_tier``, ``modalities``, ``audio``, ``prediction``, ``reasoning_effort``,
``web_search_options``, ``stream_options`` (Anthropic always reports usage) and message
``name`` fields. Refused with a 400: ``n`` > 1 (Anthropic returns one candidate), the legacy
``functions`` / ``function_call`` API and ``function`` messages, non-function tools.

Prompt caching
    With ``prompt_caching`` on, the last tool and the last system block are marked as cache
    breakpoints when the two hold enough tokens (see ``anthropic_caching``); a client's own
    ``cache_control`` on content parts is passed on instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from ai_gateway.cache.config import PromptCaching
from ai_gateway.errors import InvalidRequestError
from ai_gateway.providers.anthropic_caching import mark_stable_prefix
from ai_gateway.providers.anthropic_content import text_block, text_only, user_blocks
from ai_gateway.providers.base import ChatRequest, JSONObject
from ai_gateway.schemas.chat import (
    ChatCompletionRequest,
    Message,
    NamedToolChoice,
    ResponseFormat,
)

DEFAULT_MAX_TOKENS = 4096
RESPONSE_TOOL = "json_response"


@dataclass(frozen=True, slots=True)
class MessagesCall:
    """The Anthropic request body, and the name of the tool that carries ``response_format``."""

    body: JSONObject
    response_tool: str | None = None


@dataclass(slots=True)
class _Turn:
    role: str
    where: str
    content: list[JSONObject] = field(default_factory=list)


def translate_request(
    request: ChatRequest,
    model: str,
    default_max_tokens: int,
    prompt_caching: PromptCaching | None = None,
) -> MessagesCall:
    """The Messages API body for ``request`` (without ``stream``); raises InvalidRequestError.
    ``prompt_caching``: mark the stable prefix for Anthropic's cache (None: do not)."""
    parsed = request.parsed
    _refuse_unsupported(parsed, request.body)
    system, messages = _conversation(parsed.messages)
    body: JSONObject = {
        "model": model,
        "max_tokens": parsed.max_completion_tokens or parsed.max_tokens or default_max_tokens,
        "messages": messages,
    }
    if system:
        body["system"] = system
    _sampling(parsed, request.body, body)
    response_tool = _tools(parsed, body)
    mark_stable_prefix(body, prompt_caching)
    return MessagesCall(body, response_tool)


def _refuse_unsupported(parsed: ChatCompletionRequest, raw: JSONObject) -> None:
    if parsed.n is not None and parsed.n > 1:
        raise InvalidRequestError(
            f"n={parsed.n} is not supported by Anthropic models, which return one candidate per "
            "request; omit n (or send 1) and make separate requests.",
            param="n",
        )
    if parsed.temperature is not None and parsed.temperature > 1:
        raise InvalidRequestError(
            f"temperature {parsed.temperature:g} is out of range for Anthropic models, which "
            "accept 0 to 1 (OpenAI allows up to 2).",
            param="temperature",
        )
    for legacy in ("functions", "function_call"):
        if raw.get(legacy) is not None:
            raise InvalidRequestError(
                f"'{legacy}' (the deprecated functions API) is not supported for Anthropic "
                "models; send 'tools' and 'tool_choice' instead.",
                param=legacy,
            )


# -- messages ----------------------------------------------------------------------------------


def _conversation(messages: list[Message]) -> tuple[list[JSONObject], list[JSONObject]]:
    system: list[JSONObject] = []
    turns: list[_Turn] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if message.role in ("system", "developer"):
            system.extend(text_only(message.content, where))
            continue
        if message.role == "function":
            raise InvalidRequestError(
                f"{where}: 'function' messages (the deprecated functions API) are not supported "
                "for Anthropic models; send 'tool' messages with a 'tool_call_id'.",
                param=f"{where}.role",
            )
        if message.role == "assistant":
            role, blocks = "assistant", _assistant_blocks(message, where)
            if not blocks:
                continue  # says nothing: no turn at all
        elif message.role == "tool":
            role, blocks = "user", [_tool_result(message, where)]
        else:
            role, blocks = "user", user_blocks(message.content, where)
        if turns and turns[-1].role == role:
            turns[-1].content.extend(blocks)
        else:
            turns.append(_Turn(role, where, blocks))
    return system, [_finish_turn(turn) for turn in turns]


def _finish_turn(turn: _Turn) -> JSONObject:
    if not turn.content:
        raise InvalidRequestError(
            f"{turn.where} has empty content; Anthropic rejects empty user turns. "
            "Send some text (or leave the message out).",
            param=f"{turn.where}.content",
        )
    content = turn.content
    if turn.role == "user":
        results = [b for b in content if b["type"] == "tool_result"]
        if results:
            content = results + [b for b in content if b["type"] != "tool_result"]
    return {"role": turn.role, "content": content}


def _assistant_blocks(message: Message, where: str) -> list[JSONObject]:
    blocks: list[JSONObject] = []
    if isinstance(message.content, str):
        blocks += text_only(message.content, where)
    elif message.content is not None:
        for j, part in enumerate(message.content):
            text = part.text if part.type == "text" else part.refusal
            if part.type not in ("text", "refusal"):
                raise InvalidRequestError(
                    f"{where}.content[{j}]: assistant content parts of type '{part.type}' "
                    "are not supported by Anthropic models.",
                    param=f"{where}.content[{j}].type",
                )
            if text:
                blocks.append(text_block(text, part))
    else:
        refusal = (message.model_extra or {}).get("refusal")
        if isinstance(refusal, str) and refusal:
            blocks.append(text_block(refusal))
    for j, call in enumerate(message.tool_calls or []):
        blocks.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.function.name,
                "input": _arguments(call.function.arguments, f"{where}.tool_calls[{j}]"),
            }
        )
    return blocks


def _arguments(arguments: str, where: str) -> JSONObject:
    param = f"{where}.function.arguments"
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        raise InvalidRequestError(
            f"{param} is not valid JSON; Anthropic models need the arguments of earlier tool "
            "calls as a JSON object.",
            param=param,
        ) from None
    if not isinstance(value, dict):
        raise InvalidRequestError(
            f"{param} must be a JSON object for Anthropic models, not {type(value).__name__}.",
            param=param,
        )
    return value


def _tool_result(message: Message, where: str) -> JSONObject:
    block: JSONObject = {"type": "tool_result", "tool_use_id": message.tool_call_id}
    content = message.content
    if isinstance(content, str):
        if content:
            block["content"] = content
    elif content:
        texts = text_only(content, where)
        if texts:
            block["content"] = texts
    return block


# -- parameters and tools ----------------------------------------------------------------------


def _sampling(parsed: ChatCompletionRequest, raw: JSONObject, body: JSONObject) -> None:
    if parsed.temperature is not None:
        body["temperature"] = parsed.temperature
    if parsed.top_p is not None:
        body["top_p"] = parsed.top_p
    top_k = raw.get("top_k")
    if isinstance(top_k, int) and not isinstance(top_k, bool) and top_k > 0:
        body["top_k"] = top_k
    stop = [parsed.stop] if isinstance(parsed.stop, str) else parsed.stop
    if stop:
        body["stop_sequences"] = list(stop)
    if parsed.user:
        body["metadata"] = {"user_id": parsed.user}


def _tools(parsed: ChatCompletionRequest, body: JSONObject) -> str | None:
    tools: list[JSONObject] = []
    for k, tool in enumerate(parsed.tools or []):
        if tool.type != "function" or tool.function is None:
            raise InvalidRequestError(
                f"tools[{k}]: tools of type '{tool.type}' are not supported by Anthropic "
                "models; only 'function' tools are.",
                param=f"tools[{k}].type",
            )
        fn = tool.function
        spec: JSONObject = {"name": fn.name}
        if fn.description:
            spec["description"] = fn.description
        spec["input_schema"] = fn.parameters or {"type": "object", "properties": {}}
        tools.append(spec)
    choice = _tool_choice(parsed, has_tools=bool(tools))
    response_tool = None
    fmt = parsed.response_format
    if fmt is not None and fmt.type != "text":
        if any(t["name"] == RESPONSE_TOOL for t in tools):
            raise InvalidRequestError(
                f"A tool may not be named '{RESPONSE_TOOL}' together with response_format for "
                "Anthropic models: the gateway uses that name to carry the response format.",
                param="tools",
            )
        choice = _choice_with_response_tool(choice, has_tools=bool(tools))
        tools.append(_response_tool(fmt))
        response_tool = RESPONSE_TOOL
    if tools:
        body["tools"] = tools
    if choice is not None:
        body["tool_choice"] = choice
    return response_tool


def _tool_choice(parsed: ChatCompletionRequest, *, has_tools: bool) -> JSONObject | None:
    requested = parsed.tool_choice
    choice: JSONObject | None
    if isinstance(requested, NamedToolChoice):
        choice = {"type": "tool", "name": requested.function.name}
    elif requested == "required":
        choice = {"type": "any"}
    elif requested == "none":
        choice = {"type": "none"}
    elif requested == "auto" or parsed.parallel_tool_calls is False:
        choice = {"type": "auto"}
    else:
        choice = None
    if not has_tools:
        if choice is not None and choice["type"] in ("any", "tool"):
            raise InvalidRequestError(
                "tool_choice requires tools: send 'tools' or leave tool_choice out.",
                param="tool_choice",
            )
        return None
    if choice is not None and parsed.parallel_tool_calls is False and choice["type"] != "none":
        choice["disable_parallel_tool_use"] = True
    return choice


def _choice_with_response_tool(choice: JSONObject | None, *, has_tools: bool) -> JSONObject:
    if choice is not None and choice["type"] in ("any", "tool"):
        return choice  # already forces a tool call: a real one, or the JSON answer
    kind = choice["type"] if choice is not None else "auto"
    forced: JSONObject = (
        {"type": "any"} if has_tools and kind == "auto" else {"type": "tool", "name": RESPONSE_TOOL}
    )
    if choice is not None and choice.get("disable_parallel_tool_use"):
        forced["disable_parallel_tool_use"] = True
    return forced


def _response_tool(fmt: ResponseFormat) -> JSONObject:
    spec = fmt.json_schema if fmt.type == "json_schema" else None
    schema: dict[str, Any] | None = spec.schema_ if spec is not None else None
    if spec is None or schema is None:
        return {
            "name": RESPONSE_TOOL,
            "description": "Give the final answer as a JSON object.",
            "input_schema": {"type": "object"},
        }
    if schema.get("type", "object") != "object":
        raise InvalidRequestError(
            "response_format.json_schema.schema must describe a JSON object (type 'object') "
            "for Anthropic models.",
            param="response_format.json_schema.schema",
        )
    description = spec.description or f"Give the final answer as JSON ('{spec.name}')."
    return {"name": RESPONSE_TOOL, "description": description, "input_schema": schema}
