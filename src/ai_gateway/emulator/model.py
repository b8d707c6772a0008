"""The emulated model: a provider-neutral prompt in, deterministic completions out.

Each provider module parses its wire format into a :class:`Prompt`, calls :func:`complete`
and renders the resulting :class:`Completion` objects back into its wire format.

Tool policy: when tools are declared and the tool choice allows it, the model calls a tool
(the named one when forced, else the first declared) with arguments built from its JSON
schema; with ``tool_choice`` "auto" it does so only when the last turn is the user's and not
a tool result.  After a tool result it answers with text quoting the result.  The marker
``[[parallel_tools]]`` in the user text makes it call two tools at once (when at least two
are declared and parallel calls are allowed).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ai_gateway.emulator import text as tx

PartKind = Literal["text", "image", "tool_call", "tool_result"]
Role = Literal["system", "user", "assistant", "tool"]
ToolMode = Literal["none", "auto", "required"]
Finish = Literal["stop", "stop_sequence", "length", "tool_calls"]


@dataclass(frozen=True)
class Part:
    kind: PartKind
    text: str = ""
    name: str = ""
    arguments: Mapping[str, Any] = field(default_factory=dict)

    def tokens(self) -> int:
        if self.kind == "image":
            return tx.IMAGE_TOKENS
        if self.kind == "tool_call":
            return tx.tool_call_tokens(self.name, self.arguments)
        return tx.count_tokens(self.text)


@dataclass(frozen=True)
class Turn:
    role: Role
    parts: tuple[Part, ...]

    @property
    def text(self) -> str:
        return " ".join(p.text for p in self.parts if p.kind == "text")

    @property
    def has_tool_result(self) -> bool:
        return any(p.kind == "tool_result" for p in self.parts)


@dataclass(frozen=True)
class Tool:
    name: str
    schema: Mapping[str, Any]


@dataclass(frozen=True)
class ToolChoice:
    mode: ToolMode = "auto"
    name: str | None = None
    parallel: bool = True


@dataclass(frozen=True)
class Prompt:
    turns: tuple[Turn, ...]
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice = ToolChoice()
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    json_output: bool = False
    output_schema: Mapping[str, Any] | None = None
    choices: int = 1


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: Mapping[str, Any]

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments)

    @property
    def tokens(self) -> int:
        return tx.tool_call_tokens(self.name, self.arguments)


@dataclass(frozen=True)
class Completion:
    text: str
    finish: Finish
    stop_sequence: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()

    @property
    def pieces(self) -> list[str]:
        return tx.split_pieces(self.text)

    @property
    def tokens(self) -> int:
        return tx.count_tokens(self.text) + sum(c.tokens for c in self.tool_calls)

    def truncated_for_safety(self) -> Completion:
        """What is left when a content filter stops the answer halfway."""
        pieces = self.pieces
        return Completion(text="".join(pieces[: len(pieces) // 2]), finish="stop")


def text_part(text: str) -> Part:
    return Part("text", text=text)


def image_part() -> Part:
    return Part("image")


def tool_call_part(name: str, arguments: Mapping[str, Any]) -> Part:
    return Part("tool_call", name=name, arguments=arguments)


def tool_result_part(content: Any) -> Part:
    return Part("tool_result", text=content if isinstance(content, str) else json.dumps(content))


def prompt_tokens(prompt: Prompt) -> int:
    """Input tokens of a prompt under the shared token rule (see ``text.py``)."""
    turns = sum(tx.MESSAGE_OVERHEAD_TOKENS + sum(p.tokens() for p in t.parts) for t in prompt.turns)
    return turns + tx.TOOL_DEFINITION_TOKENS * len(prompt.tools)


def _last_user_text(turns: tuple[Turn, ...]) -> str:
    for turn in reversed(turns):
        if turn.role == "user" and turn.text:
            return turn.text
    return ""


def _trailing_results(turns: tuple[Turn, ...]) -> list[str] | None:
    """Tool results of the final turn(s), or None when the last turn is not a tool result."""
    conversation = [t for t in turns if t.role != "system"]
    if len(conversation) > 1 and conversation[-1].role == "assistant":
        conversation.pop()  # a trailing assistant turn is a prefill, not the last word
    results: list[str] = []
    for turn in reversed(conversation):
        if turn.role != "tool" and not turn.has_tool_result:
            break
        results[:0] = [p.text for p in turn.parts if p.kind == "tool_result"]
    return results if results else None


def _pick_tools(prompt: Prompt, markers: str) -> list[Tool]:
    by_name = {t.name: t for t in prompt.tools}
    first = by_name.get(prompt.tool_choice.name or "", prompt.tools[0])
    chosen = [first]
    if prompt.tool_choice.parallel and tx.wants_parallel_tools(markers):
        chosen += [t for t in prompt.tools if t.name != first.name][:1]
    return chosen


def _arguments(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Tool arguments are always an object, even for a schema-less tool."""
    value = tx.schema_placeholder(schema, all_properties=False)
    return value if isinstance(value, dict) else {}


def complete(prompt: Prompt) -> list[Completion]:
    """Generate ``prompt.choices`` deterministic completions."""
    tool_results = _trailing_results(prompt.turns)
    markers = _last_user_text(prompt.turns)
    after_tool = tool_results is not None
    mode = prompt.tool_choice.mode
    call_tools = bool(prompt.tools) and (mode == "required" or (mode == "auto" and not after_tool))
    seed = repr(prompt.turns)
    results: list[Completion] = []
    for choice in range(prompt.choices):
        if call_tools:
            calls = tuple(
                ToolCall(
                    id=tx.stable_id("", seed, choice, index),
                    name=tool.name,
                    arguments=_arguments(tool.schema),
                )
                for index, tool in enumerate(_pick_tools(prompt, markers))
            )
            results.append(Completion(text="", finish="tool_calls", tool_calls=calls))
            continue
        subject = " ".join(tool_results) if tool_results is not None else markers
        body = tx.compose_reply(subject, markers=markers, choice=choice, tool_result=after_tool)
        if prompt.output_schema is not None:
            body = json.dumps(tx.schema_placeholder(prompt.output_schema, all_properties=True))
        elif prompt.json_output:
            body = json.dumps({"reply": body})
        final, reason, matched = tx.apply_limits(body, prompt.stop, prompt.max_tokens)
        finish: Finish = "length" if reason == "length" else "stop"
        if reason == "stop_sequence":
            finish = "stop_sequence"
        results.append(Completion(text=final, finish=finish, stop_sequence=matched))
    return results
