"""The chain's stream (OpenAI chunks) as the Messages API's event sequence. One `MessageEvents`
per stream; `feed` each chunk, then `close` when the stream completed. Pure: no I/O.

Two modes, chosen by the first chunk:

Relayed (an Anthropic deployment: the chunks carry the upstream's events, providers/native.py)
    The events are sent as they came, `ping`s, signatures, citations and usage included, with
    two changes. Text, thinking and tool arguments come from the chunks' view, which the stages
    may have changed (content rules hold back and redact text, on_chunk hooks rewrite it): a
    `text_delta` carries the view's `content`, a `thinking_delta` its `reasoning_content` and an
    `input_json_delta` its arguments (one left empty is not sent), and text a stage released
    late goes into its block before the block ends (before a thinking block's signature), else
    into the open block of its kind, else into a block of its own.
    Block indexes are renumbered in the order the blocks start, so that a block the gateway
    adds keeps them the positions in `content` that clients index by.

Translated (any other deployment, or a cached answer)
    `message_start` (usage unknown yet: 0), a `ping`, then per chunk: `reasoning_content` ->
    a thinking block's `thinking_delta`s, `content` -> a text block's `text_delta`s, each tool
    call -> a `tool_use` block (id, name) and its `input_json_delta`s; a new kind of delta closes
    the open block (`content_block_stop`). At the end: `message_delta` with the stop reason and
    the whole usage (`input_tokens` included, which Anthropic's SDKs take from it), then
    `message_stop`.
"""

from __future__ import annotations

from typing import Any

from ai_gateway.messages.response import message_id, stop_reason, usage_of
from ai_gateway.providers.native import NATIVE_KEY, JSONObject


def _delta(chunk: JSONObject) -> tuple[JSONObject, object]:
    """The first choice's delta and finish reason of a chunk."""
    choices = chunk.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    if not isinstance(choice, dict):
        return {}, None
    delta = choice.get("delta")
    return (delta if isinstance(delta, dict) else {}), choice.get("finish_reason")


# A delta type -> its streamed field (the view's text replaces it; a signature marks the end of
# a thinking block's text).
_STREAMED = {
    "text_delta": "text",
    "thinking_delta": "thinking",
    "input_json_delta": "partial_json",
    "signature_delta": "signature",
}
_DELTA_TYPES = {
    "text": "text_delta",
    "thinking": "thinking_delta",
    "partial_json": "input_json_delta",
}


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _arguments(call: JSONObject) -> str:
    function = call.get("function")
    return _text(function.get("arguments")) if isinstance(function, dict) else ""


class MessageEvents:
    def __init__(self, model: str) -> None:
        self._model = model
        self._relayed: bool | None = None  # decided by the first chunk
        self._started = 0  # blocks started: the next block's index
        # Open blocks: their key (relayed: the upstream's index; translated: a name) -> our
        # index and the block's type.
        self._open: dict[int | str, tuple[int, str]] = {}
        self._finished = False
        # Relayed: the upstream's block index -> ours; the blocks of each tool call, in order.
        self._native: dict[int, int] = {}
        self._tool_blocks: list[int] = []
        # Translated: the open block's key, each tool call's block, what the end reports.
        self._current: str | None = None
        self._calls: dict[int, int] = {}
        self._stop: str | None = None
        self._usage: JSONObject = {}

    def feed(self, chunk: JSONObject) -> list[JSONObject]:
        events = chunk.get(NATIVE_KEY)
        if self._relayed is None:
            self._relayed = isinstance(events, list)
            if not self._relayed:
                return self._start(chunk) + self._translate(chunk)
        if self._relayed:
            return self._relay(chunk, events if isinstance(events, list) else [])
        return self._translate(chunk)

    def close(self) -> list[JSONObject]:
        """The events that end a stream that completed (none when the upstream's did)."""
        if self._finished or self._relayed is None:
            return []
        events = [self._stop_block(key) for key in list(self._open)]
        usage = self._usage if not self._relayed else {"output_tokens": 0}
        delta = {"stop_reason": self._stop or "end_turn", "stop_sequence": None}
        events.append({"type": "message_delta", "delta": delta, "usage": usage})
        events.append({"type": "message_stop"})
        self._finished = True
        return events

    # -- blocks ------------------------------------------------------------------------------

    def _start_block(self, key: int | str, block: JSONObject) -> JSONObject:
        index = self._started
        self._started += 1
        self._open[key] = (index, str(block.get("type")))
        return {"type": "content_block_start", "index": index, "content_block": block}

    def _stop_block(self, key: int | str) -> JSONObject:
        index, _ = self._open.pop(key)
        return {"type": "content_block_stop", "index": index}

    # -- relayed -----------------------------------------------------------------------------

    def _relay(self, chunk: JSONObject, upstream: list[Any]) -> list[JSONObject]:
        delta, finish = _delta(chunk)
        calls = delta.get("tool_calls")
        call = calls[0] if isinstance(calls, list) and calls and isinstance(calls[0], dict) else {}
        # The chunk's view of each streamed text: what the client is to get of it.
        view = {
            "text": _text(delta.get("content")),
            "thinking": _text(delta.get("reasoning_content")),
            "partial_json": _arguments(call),
        }
        out: list[JSONObject] = []
        for event in upstream:
            if not isinstance(event, dict):
                continue
            kind, index = event.get("type"), event.get("index")
            if kind == "content_block_start" and isinstance(index, int):
                block = event.get("content_block")
                block = block if isinstance(block, dict) else {}
                out.append(self._start_block(index, block))
                self._native[index] = out[-1]["index"]
                if block.get("type") == "tool_use":
                    self._tool_blocks.append(index)
                continue
            if kind == "content_block_delta" and isinstance(index, int):
                change = event.get("delta")
                change = change if isinstance(change, dict) else {}
                field = _STREAMED.get(str(change.get("type")))
                if field is not None:
                    if change.get("type") == "signature_delta":
                        out += self._flush(index, view)  # the thinking ends before its signature
                    else:
                        change, view[field] = {**change, field: view[field]}, ""
                        if not change[field]:
                            continue
                out.append({**event, "index": self._native.get(index, index), "delta": change})
                continue
            if kind == "content_block_stop" and isinstance(index, int):
                out += self._flush(index, view)
                if index in self._open:
                    out.append(self._stop_block(index))
                continue
            if kind == "message_delta":
                out += self._placed(view)
                if finish == "content_filter":
                    change = {**(event.get("delta") or {}), "stop_reason": "refusal"}
                    event = {**event, "delta": change}
            elif kind == "message_stop":
                self._finished = True
            out.append(event)
        return out + self._placed(view)

    def _flush(self, index: int, view: dict[str, str]) -> list[JSONObject]:
        """The view's text of the kind of open block `index` that no delta carried yet (a stage
        released it late), as one more delta of that block before it ends."""
        kind = self._open.get(index, (0, ""))[1]
        field = "text" if kind == "text" else "thinking" if kind == "thinking" else None
        if field is None or not view[field]:
            return []
        text, view[field] = view[field], ""
        return [self._delta_event(self._native[index], field, text)]

    def _placed(self, view: dict[str, str]) -> list[JSONObject]:
        """Texts of a chunk that no event of its own carried (a stage added them): into the open
        block of their kind, else a block of their own; tool arguments into the open tool
        block (else they have nowhere to go)."""
        out: list[JSONObject] = []
        for field in ("thinking", "text"):
            text, view[field] = view[field], ""
            if not text:
                continue
            open_ones = [i for i, kind in self._open.values() if kind == field]
            if open_ones:
                out.append(self._delta_event(open_ones[-1], field, text))
            else:
                out += self._own_block(field, text)
        arguments, view["partial_json"] = view["partial_json"], ""
        if arguments and self._tool_blocks and self._tool_blocks[-1] in self._open:
            index = self._native[self._tool_blocks[-1]]
            out.append(self._delta_event(index, "partial_json", arguments))
        return out

    def _own_block(self, field: str, text: str) -> list[JSONObject]:
        index = self._started
        self._started += 1
        block = {"type": "text", "text": ""}
        if field == "thinking":
            block = {"type": "thinking", "thinking": "", "signature": ""}
        return [
            {"type": "content_block_start", "index": index, "content_block": block},
            self._delta_event(index, field, text),
            {"type": "content_block_stop", "index": index},
        ]

    @staticmethod
    def _delta_event(index: int, field: str, text: str) -> JSONObject:
        change = {"type": _DELTA_TYPES[field], field: text}
        return {"type": "content_block_delta", "index": index, "delta": change}

    # -- translated --------------------------------------------------------------------------

    def _start(self, chunk: JSONObject) -> list[JSONObject]:
        message: JSONObject = {
            "id": message_id(chunk.get("id")),
            "type": "message",
            "role": "assistant",
            "model": str(chunk.get("model") or self._model),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [{"type": "message_start", "message": message}, {"type": "ping"}]

    def _translate(self, chunk: JSONObject) -> list[JSONObject]:
        out: list[JSONObject] = []
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self._usage = usage_of(usage)
        delta, finish = _delta(chunk)
        reasoning = _text(delta.get("reasoning_content"))
        if reasoning:
            out += self._into("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            out.append(self._delta_event(self._index(), "thinking", reasoning))
        text = _text(delta.get("content"))
        if text:
            out += self._into("text", {"type": "text", "text": ""})
            out.append(self._delta_event(self._index(), "text", text))
        for call in delta.get("tool_calls") or ():
            if isinstance(call, dict):
                out += self._tool_call(call)
        if isinstance(finish, str):
            self._stop = stop_reason(finish)
        return out

    def _index(self) -> int:
        assert self._current is not None
        return self._open[self._current][0]

    def _into(self, kind: str, block: JSONObject) -> list[JSONObject]:
        """Events to make a block of `kind` the open one (nothing when it is)."""
        if self._current == kind and kind in self._open:
            return []
        out = [self._stop_block(k) for k in list(self._open)]
        self._current = kind
        out.append(self._start_block(kind, block))
        return out

    def _tool_call(self, call: JSONObject) -> list[JSONObject]:
        out: list[JSONObject] = []
        position = call.get("index", 0)
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        if position not in self._calls:
            out += [self._stop_block(k) for k in list(self._open)]
            key = f"tool:{position}"
            self._current = key
            block = {
                "type": "tool_use",
                "id": str(call.get("id") or ""),
                "name": str(function.get("name") or ""),
                "input": {},
            }
            out.append(self._start_block(key, block))
            self._calls[position] = out[-1]["index"]
        arguments = _text(function.get("arguments"))
        if arguments:
            out.append(self._delta_event(self._calls[position], "partial_json", arguments))
        return out
