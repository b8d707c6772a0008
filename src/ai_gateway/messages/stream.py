"""The chain's stream (OpenAI chunks) as the Messages API's event sequence. One `MessageEvents`
per stream; `feed` each chunk, then `close` when the stream completed. Pure: no I/O.

Two modes, chosen by the first chunk:

Relayed (an Anthropic deployment: the chunks carry the upstream's events, providers/native.py)
    The events are sent as they came, `ping`s, thinking and signature deltas, citations and
    usage included, with two changes. Text and tool arguments come from the chunks' view, which
    the stages may have changed (content rules hold back and redact text, on_chunk hooks rewrite
    it): a `text_delta` carries the view's text and an `input_json_delta` the view's arguments
    (one left empty is not sent), and text a stage added (held-back text released at the end)
    goes into the open text block, or before the message ends into a text block of its own.
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
        text = _text(delta.get("content"))
        calls = delta.get("tool_calls")
        call = calls[0] if isinstance(calls, list) and calls and isinstance(calls[0], dict) else {}
        arguments = _arguments(call)
        out: list[JSONObject] = []
        for event in upstream:
            if not isinstance(event, dict):
                continue
            kind = event.get("type")
            index = event.get("index")
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
                if change.get("type") == "text_delta":
                    change, text = {**change, "text": text}, ""
                elif change.get("type") == "input_json_delta":
                    change, arguments = {**change, "partial_json": arguments}, ""
                if change.get("text") == "" or change.get("partial_json") == "":
                    continue
                out.append({**event, "index": self._native.get(index, index), "delta": change})
                continue
            if kind == "content_block_stop" and isinstance(index, int):
                if text and self._open.get(index, (0, ""))[1] == "text":
                    out.append(self._text_delta(self._native[index], text))
                    text = ""
                if index in self._open:
                    out.append(self._stop_block(index))
                continue
            if kind == "message_delta":
                out += self._own_text_block(text)
                text = ""
                if finish == "content_filter":
                    event = {
                        **event,
                        "delta": {**(event.get("delta") or {}), "stop_reason": "refusal"},
                    }
            elif kind == "message_stop":
                self._finished = True
            out.append(event)
        out += self._placed(text, arguments)
        return out

    def _placed(self, text: str, arguments: str) -> list[JSONObject]:
        """Text and arguments of a chunk that no event of its own carried (a stage added them)."""
        out: list[JSONObject] = []
        if text:
            open_text = [i for i, kind in self._open.values() if kind == "text"]
            out += (
                [self._text_delta(open_text[-1], text)] if open_text else self._own_text_block(text)
            )
        if arguments and self._tool_blocks and self._tool_blocks[-1] in self._open:
            index = self._native[self._tool_blocks[-1]]
            change = {"type": "input_json_delta", "partial_json": arguments}
            out.append({"type": "content_block_delta", "index": index, "delta": change})
        return out

    def _own_text_block(self, text: str) -> list[JSONObject]:
        if not text:
            return []
        index = self._started
        self._started += 1
        return [
            {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "text", "text": ""},
            },
            self._text_delta(index, text),
            {"type": "content_block_stop", "index": index},
        ]

    @staticmethod
    def _text_delta(index: int, text: str) -> JSONObject:
        return {
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": "text_delta", "text": text},
        }

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
            change = {"type": "thinking_delta", "thinking": reasoning}
            out.append({"type": "content_block_delta", "index": self._index(), "delta": change})
        text = _text(delta.get("content"))
        if text:
            out += self._into("text", {"type": "text", "text": ""})
            out.append(self._text_delta(self._index(), text))
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
            change = {"type": "input_json_delta", "partial_json": arguments}
            out.append(
                {"type": "content_block_delta", "index": self._calls[position], "delta": change}
            )
        return out
