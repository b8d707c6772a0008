"""The chain's chat chunks as the Responses API's stream events (the renderer's half, for a
stream). No I/O: `ResponseStream` is fed chunks and returns events, each with its
`sequence_number` (0, 1, 2, ... in the order sent).

    response.created, response.in_progress             first, with the response in progress
    (file_search_call: output_item.added, response.file_search_call.in_progress / .searching /
     .completed, output_item.done)                      when the gateway searched
    reasoning text:  output_item.added (reasoning), reasoning_summary_part.added,
                     reasoning_summary_text.delta..., then .done, part .done, output_item.done
    text:            output_item.added (message), content_part.added (output_text),
                     output_text.delta..., output_text.done, content_part.done, output_item.done
    refusal:         content_part.added (refusal), refusal.delta..., refusal.done, part .done
    a tool call:     output_item.added (function_call), function_call_arguments.delta...,
                     function_call_arguments.done, output_item.done
    response.completed (or response.incomplete: the output token limit, a content filter)

An item is closed when the next kind of item starts (reasoning before text, text before tool
calls), and at the end; tool calls stay open until the end (their argument fragments may
interleave). `fail()` ends a stream that broke after it started with an `error` event and
`response.failed`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ai_gateway.providers.base import JSONObject
from ai_gateway.responses import ids
from ai_gateway.responses import output as out
from ai_gateway.responses.records import JSONItem


@dataclass(slots=True)
class _Item:
    index: int
    id: str
    kind: str  # message, reasoning, function_call
    text: str = ""  # reasoning text, or the arguments of a function call
    parts: list[JSONItem] = field(default_factory=list)  # a message's parts
    call_id: str = ""
    name: str = ""


class ResponseStream:
    """One response's events. `response` is the Response object in progress (status
    `in_progress`, no output); it is updated as the stream goes and is final after `finish()`
    or `fail()`."""

    def __init__(self, response: JSONObject, with_logprobs: bool = False) -> None:
        self.response = response
        self._logprobs = with_logprobs
        self._sequence = 0
        self._done: list[tuple[int, JSONItem]] = []  # finished items, by output index
        self._next_index = 0
        self._text: _Item | None = None  # the message item being written
        self._reasoning: _Item | None = None
        self._calls: dict[int, _Item] = {}  # tool calls by their chunk index
        self.finish_reason: str | None = None
        self.usage: Any = None

    # -- events --------------------------------------------------------------------------------

    def _event(self, kind: str, **fields: Any) -> JSONObject:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    def _snapshot(self) -> JSONObject:
        return {**self.response, "output": self.output()}

    def output(self) -> list[JSONItem]:
        return [item for _, item in sorted(self._done, key=lambda pair: pair[0])]

    def opening(self, prefix: Sequence[JSONItem] = ()) -> list[JSONObject]:
        """response.created and response.in_progress, then the items already done (the
        gateway's file search)."""
        events = [
            self._event("response.created", response=self._snapshot()),
            self._event("response.in_progress", response=self._snapshot()),
        ]
        for item in prefix:
            index = self._claim()
            where = {"output_index": index, "item_id": item["id"]}
            events.append(
                self._event(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "status": "in_progress", "results": None},
                )
            )
            if item.get("type") == "file_search_call":
                for step in ("in_progress", "searching", "completed"):
                    events.append(self._event(f"response.file_search_call.{step}", **where))
            events.append(self._event("response.output_item.done", output_index=index, item=item))
            self._done.append((index, item))
        return events

    def _claim(self) -> int:
        index = self._next_index
        self._next_index += 1
        return index

    # -- chunks --------------------------------------------------------------------------------

    def feed(self, chunk: JSONObject) -> list[JSONObject]:
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        events: list[JSONObject] = []
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            thought = out.reasoning_text(delta)
            if thought:
                events += self._reasoning_delta(thought)
            content = delta.get("content")
            if isinstance(content, str) and content:
                logprobs = (choice.get("logprobs") or {}).get("content") or []
                events += self._text_delta("output_text", content, logprobs)
            refusal = delta.get("refusal")
            if isinstance(refusal, str) and refusal:
                events += self._text_delta("refusal", refusal, [])
            for call in delta.get("tool_calls") or ():
                events += self._call_delta(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return events

    def _reasoning_delta(self, text: str) -> list[JSONObject]:
        events: list[JSONObject] = []
        item = self._reasoning
        if item is None:
            events += self._close_text()
            item = self._reasoning = _Item(self._claim(), ids.new_id(ids.REASONING), "reasoning")
            events.append(
                self._event(
                    "response.output_item.added",
                    output_index=item.index,
                    item={"id": item.id, "type": "reasoning", "summary": []},
                )
            )
            events.append(
                self._event(
                    "response.reasoning_summary_part.added",
                    item_id=item.id,
                    output_index=item.index,
                    summary_index=0,
                    part={"type": "summary_text", "text": ""},
                )
            )
        item.text += text
        events.append(
            self._event(
                "response.reasoning_summary_text.delta",
                item_id=item.id,
                output_index=item.index,
                summary_index=0,
                delta=text,
            )
        )
        return events

    def _close_reasoning(self) -> list[JSONObject]:
        item = self._reasoning
        if item is None:
            return []
        self._reasoning = None
        where = {"item_id": item.id, "output_index": item.index, "summary_index": 0}
        done = out.reasoning_item(item.id, item.text)
        self._done.append((item.index, done))
        return [
            self._event("response.reasoning_summary_text.done", **where, text=item.text),
            self._event(
                "response.reasoning_summary_part.done",
                **where,
                part={"type": "summary_text", "text": item.text},
            ),
            self._event("response.output_item.done", output_index=item.index, item=done),
        ]

    def _text_delta(self, kind: str, text: str, logprobs: list[Any]) -> list[JSONObject]:
        events = self._close_reasoning()
        item = self._text
        if item is None:
            item = self._text = _Item(self._claim(), ids.new_id(ids.MESSAGE), "message")
            events.append(
                self._event(
                    "response.output_item.added",
                    output_index=item.index,
                    item=out.message_item(item.id, [], status="in_progress"),
                )
            )
        where = {"item_id": item.id, "output_index": item.index}
        if not item.parts or item.parts[-1]["type"] != kind:
            events += self._close_part(item)
            new: JSONItem = (
                out.text_part("") if kind == "output_text" else {"type": kind, "refusal": ""}
            )
            item.parts.append(new)
            events.append(
                self._event(
                    "response.content_part.added",
                    **where,
                    content_index=len(item.parts) - 1,
                    part=dict(new),
                )
            )
        part = item.parts[-1]
        content_index = len(item.parts) - 1
        if kind == "output_text":
            part["text"] += text
            if self._logprobs:
                part.setdefault("logprobs", []).extend(logprobs)
            events.append(
                self._event(
                    "response.output_text.delta",
                    **where,
                    content_index=content_index,
                    delta=text,
                    logprobs=logprobs if self._logprobs else [],
                )
            )
        else:
            part["refusal"] += text
            events.append(
                self._event(
                    "response.refusal.delta", **where, content_index=content_index, delta=text
                )
            )
        return events

    def _close_part(self, item: _Item) -> list[JSONObject]:
        """The `.done` events of the message's last part, if it has one still open."""
        if not item.parts or item.parts[-1].get("_closed"):
            return []
        part = item.parts[-1]
        part["_closed"] = True
        shown = {k: v for k, v in part.items() if k != "_closed"}
        where = {
            "item_id": item.id,
            "output_index": item.index,
            "content_index": len(item.parts) - 1,
        }
        if part["type"] == "output_text":
            done = self._event(
                "response.output_text.done",
                **where,
                text=part["text"],
                logprobs=part.get("logprobs", []),
            )
        else:
            done = self._event("response.refusal.done", **where, refusal=part["refusal"])
        return [done, self._event("response.content_part.done", **where, part=shown)]

    def _close_text(self) -> list[JSONObject]:
        item = self._text
        if item is None:
            return []
        self._text = None
        events = self._close_part(item)
        parts = [{k: v for k, v in p.items() if k != "_closed"} for p in item.parts]
        done = out.message_item(item.id, parts)
        self._done.append((item.index, done))
        events.append(self._event("response.output_item.done", output_index=item.index, item=done))
        return events

    def _call_delta(self, call: JSONObject) -> list[JSONObject]:
        events: list[JSONObject] = []
        position = int(call.get("index") or 0)
        function = call.get("function") or {}
        item = self._calls.get(position)
        if item is None:
            events += self._close_reasoning()
            events += self._close_text()
            item = _Item(
                self._claim(),
                ids.new_id(ids.FUNCTION_CALL),
                "function_call",
                call_id=str(call.get("id") or ids.new_id("call")),
                name=str(function.get("name") or ""),
            )
            self._calls[position] = item
            events.append(
                self._event(
                    "response.output_item.added",
                    output_index=item.index,
                    item=out.function_call_item(
                        item.id, item.call_id, item.name, "", status="in_progress"
                    ),
                )
            )
        elif function.get("name") and not item.name:
            item.name = str(function["name"])
        fragment = function.get("arguments")
        if isinstance(fragment, str) and fragment:
            item.text += fragment
            events.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item.id,
                    output_index=item.index,
                    delta=fragment,
                )
            )
        return events

    def _close_calls(self) -> list[JSONObject]:
        events: list[JSONObject] = []
        for item in sorted(self._calls.values(), key=lambda i: i.index):
            done = out.function_call_item(item.id, item.call_id, item.name, item.text)
            self._done.append((item.index, done))
            events.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item.id,
                    output_index=item.index,
                    name=item.name,
                    arguments=item.text,
                )
            )
            events.append(
                self._event("response.output_item.done", output_index=item.index, item=done)
            )
        self._calls = {}
        return events

    # -- the end -------------------------------------------------------------------------------

    def finish(self, completed_at: int) -> list[JSONObject]:
        """Close what is open; the last event is response.completed (or response.incomplete)."""
        events = self._close_reasoning() + self._close_text() + self._close_calls()
        final = out.response_object(
            self.response["id"],
            self.response["created_at"],
            self.response["model"],
            _echo_of(self.response),
            status="completed",
            output=self.output(),
            usage=out.usage(self.usage),
            finish_reason=self.finish_reason,
            completed_at=completed_at,
        )
        self.response = final
        kind = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
        events.append(self._event(kind, response=final))
        return events

    def fail(self, error: JSONObject) -> list[JSONObject]:
        """The stream broke after it started: an `error` event, then response.failed with what
        was finished. `error`: the Response object's `error` (code, message, type, param)."""
        self.response = {
            **self.response,
            "status": "failed",
            "error": error,
            "output": self.output(),
            "usage": out.usage(self.usage),
        }
        return [
            self._event(
                "error",
                code=error.get("code"),
                message=error.get("message", ""),
                param=error.get("param"),
            ),
            self._event("response.failed", response=self.response),
        ]


_OWN = frozenset(
    (
        *("id", "object", "created_at", "status", "completed_at", "error"),
        *("incomplete_details", "model", "output", "usage"),
    )
)


def _echo_of(response: JSONObject) -> JSONObject:
    return {k: v for k, v in response.items() if k not in _OWN}
