"""The output content rules over a stream of OpenAI chat chunks (the guard stage's stream
wrapper, pipeline/guard.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ai_gateway.providers.base import JSONObject
from ai_gateway.security.guardrails import Finding, Guardrails, StreamFilter

# Counts and audits what the rules found; raises GuardrailBlockedError on a block.
Report = Callable[[Sequence[Finding], Finding | None], None]


class ChunkGuard:
    """The output rules over a stream of OpenAI chat chunks. Every streamed text of a choice
    goes through a StreamFilter: each string field of the delta but `role` (`content`,
    `refusal`, `reasoning_content`, ...), each tool call's `function.arguments` and a legacy
    `function_call.arguments`. The filter may hold back a short tail of each until it knows no
    match spans the chunk boundary; a tail is released as soon as the choice moves on to other
    fields (the reasoning is over once the content starts, a tool call once the next one does),
    so that each text ends before the next begins, and the rest with the choice's finishing
    chunk."""

    def __init__(self, guard: Guardrails, report: Report) -> None:
        self._filter: StreamFilter = guard.stream_filter()
        self._report = report
        self._open: dict[int, dict[str, int | None]] = {}  # choice -> field -> tool call index
        self._envelope: JSONObject = {}

    def apply(self, chunk: JSONObject) -> None:
        """Filter the chunk's texts in place; GuardrailBlockedError on a `block` rule."""
        if not self._envelope:
            self._envelope = {
                k: chunk[k] for k in ("id", "object", "created", "model") if k in chunk
            }
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0)
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            texts = _streamed_texts(delta)
            fields = self._open.get(index)
            if texts and fields:
                now = {field for field, *_ in texts}
                for field in [f for f in fields if f not in now]:
                    self._release_field(index, field, delta)
            for field, holder, key, call in texts:
                text = holder[key]
                self._open.setdefault(index, {})[field] = call
                step = self._filter.feed(index, text, field)
                self._report(step.findings, step.blocked)
                holder[key] = step.text
            if choice.get("finish_reason") and index in self._open:
                self._release(index, delta)

    def tails(self) -> list[JSONObject]:
        """Chunks carrying what is still held back when the stream ended without finishing
        each choice (rare: upstreams send a finish reason)."""
        chunks: list[JSONObject] = []
        for index in sorted(self._open):
            delta: JSONObject = {}
            self._release(index, delta)
            if delta:
                choice = {"index": index, "delta": delta, "finish_reason": None}
                chunks.append({**self._envelope, "choices": [choice]})
        return chunks

    def _release_field(self, index: int, field: str, delta: JSONObject) -> None:
        """Add what the filter held back of one finished text of choice `index` to `delta`."""
        call = self._open[index].pop(field)
        step = self._filter.finish(index, field)
        self._report(step.findings, step.blocked)
        if step.text:
            _append(delta, field, call, step.text)

    def _release(self, index: int, delta: JSONObject) -> None:
        """Add what the filter held back of each text of choice `index` to `delta`."""
        for field, call in self._open.pop(index).items():
            step = self._filter.finish(index, field)
            self._report(step.findings, step.blocked)
            if step.text:
                _append(delta, field, call, step.text)


def _streamed_texts(delta: JSONObject) -> list[tuple[str, JSONObject, str, int | None]]:
    """(field path, the object holding it, its key, the tool call's index) of each non-empty
    streamed text of a delta."""
    found: list[tuple[str, JSONObject, str, int | None]] = [
        (key, delta, key, None)
        for key, value in delta.items()
        if key != "role" and isinstance(value, str) and value
    ]
    calls = delta.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            number = call.get("index", 0)
            if function["arguments"]:
                path = f"tool_calls[{number}].function.arguments"
                found.append((path, function, "arguments", number))
    legacy = delta.get("function_call")
    if (
        isinstance(legacy, dict)
        and isinstance(legacy.get("arguments"), str)
        and legacy["arguments"]
    ):
        found.append(("function_call.arguments", legacy, "arguments", None))
    return found


def _append(delta: JSONObject, field: str, call: int | None, text: str) -> None:
    """Append `text` to `field` of a delta (creating the tool call entry or field as needed)."""
    if call is not None:
        calls = delta.get("tool_calls")
        if not isinstance(calls, list):
            calls = delta["tool_calls"] = []
        entry = next((c for c in calls if c.get("index", 0) == call), None)
        if entry is None:
            entry = {"index": call, "function": {"arguments": ""}}
            calls.append(entry)
        function = entry.setdefault("function", {})
        function["arguments"] = (function.get("arguments") or "") + text
    elif field == "function_call.arguments":
        legacy = delta.setdefault("function_call", {})
        legacy["arguments"] = (legacy.get("arguments") or "") + text
    else:
        delta[field] = (delta.get(field) or "") + text
