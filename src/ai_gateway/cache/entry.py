"""A cache entry: a complete answer, as a JSON `chat.completion` and, for a streamed miss, the
chunks it was streamed in (reasoning, tool calls and the usage chunk included), with what it
cost when it was generated. Stored as JSON bytes.

A stream request served from a JSON entry gets the answer cut into chunks; a JSON request served
from a streamed entry gets the chunks put together (`answer_of`), so either kind of request can
use either kind of entry.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import orjson

from ai_gateway.providers.base import JSONObject

VERSION = 1
PIECE_CHARS = 64  # the size of the text pieces a JSON answer is replayed in


class BadEntryError(Exception):
    """Stored bytes that are not an entry of this version (dropped and counted)."""


@dataclass(frozen=True, slots=True)
class Entry:
    created: float  # unix time it was stored (the `age` header)
    answer: JSONObject | None  # a chat.completion, or None when only chunks were stored
    chunks: list[JSONObject] | None
    cost_usd: Decimal | None  # what the answer cost when it was generated
    tokens: int  # its prompt + completion tokens

    def encode(self) -> bytes:
        answer = orjson.dumps(self.answer) if self.answer is not None else None
        chunks = [orjson.dumps(c) for c in self.chunks] if self.chunks is not None else None
        return encode_entry(self.created, answer, chunks, self.cost_usd, self.tokens)

    @classmethod
    def decode(cls, data: bytes) -> Entry:
        try:
            raw = orjson.loads(data)
            if not isinstance(raw, dict) or raw.get("v") != VERSION:
                raise BadEntryError("not an entry of this version")
            answer, chunks = raw["answer"], raw["chunks"]
            if not isinstance(answer, dict | None) or not isinstance(chunks, list | None):
                raise BadEntryError("wrong shape")
            if answer is None and not chunks:
                raise BadEntryError("empty")
            cost = raw["cost_usd"]
            return cls(
                created=float(raw["created"]),
                answer=answer,
                chunks=chunks,
                cost_usd=Decimal(cost) if cost is not None else None,
                tokens=int(raw["tokens"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, InvalidOperation):
            raise BadEntryError("undecodable") from None

    def as_answer(self) -> JSONObject:
        """The answer, the caller's to change: an entry is decoded for one request and serves
        it once (stored bytes and a flight's answer are decoded anew for each)."""
        if self.answer is not None:
            return self.answer
        assert self.chunks is not None
        return answer_of(self.chunks)

    def as_chunks(self) -> list[JSONObject]:
        """The chunks, the usage chunk last; the caller's, as with `as_answer`."""
        if self.chunks is not None:
            return self.chunks
        assert self.answer is not None
        return chunks_of(self.answer)


def encode_entry(
    created: float,
    answer: bytes | None,
    chunks: list[bytes] | None,
    cost_usd: Decimal | None,
    tokens: int,
) -> bytes:
    """An entry's bytes from its answer or chunks already encoded as JSON (each is encoded once,
    as it passes through). Copied to an object of their own size: orjson allocates at least
    4 KiB for what it returns, which a store that keeps thousands of entries would hold on to
    (and which its byte bound, counting `len`, would not see)."""
    encoded = orjson.dumps(
        {
            "v": VERSION,
            "created": created,
            "answer": orjson.Fragment(answer) if answer is not None else None,
            "chunks": [orjson.Fragment(c) for c in chunks] if chunks is not None else None,
            "cost_usd": str(cost_usd) if cost_usd is not None else None,
            "tokens": tokens,
        }
    )
    return memoryview(encoded).tobytes()


def answer_of(chunks: list[JSONObject]) -> JSONObject:
    """The `chat.completion` a stream of chunks adds up to."""
    choices: dict[int, JSONObject] = {}
    envelope: JSONObject = {}
    usage: object = None
    for chunk in chunks:
        for field in ("id", "created", "model", "system_fingerprint", "service_tier"):
            if field in chunk and field not in envelope:
                envelope[field] = chunk[field]
        if chunk.get("usage"):
            usage = chunk["usage"]
        for part in chunk.get("choices") or ():
            index = part.get("index", 0)
            choice = choices.setdefault(
                index,
                {"index": index, "message": {"role": "assistant"}, "finish_reason": None},
            )
            _merge_delta(choice["message"], part.get("delta") or {})
            if part.get("finish_reason"):
                choice["finish_reason"] = part["finish_reason"]
            logprobs = part.get("logprobs")
            if isinstance(logprobs, dict):
                merged = choice.setdefault("logprobs", {})
                for key, items in logprobs.items():
                    if isinstance(items, list):
                        merged.setdefault(key, []).extend(items)
    message_defaults = {"content": None}
    answer: JSONObject = {
        "id": envelope.get("id", ""),
        "object": "chat.completion",
        "created": envelope.get("created", 0),
        "model": envelope.get("model", ""),
        "choices": [
            {**c, "message": {**message_defaults, **c["message"]}}
            for _, c in sorted(choices.items())
        ],
    }
    for field in ("system_fingerprint", "service_tier"):
        if field in envelope:
            answer[field] = envelope[field]
    if usage is not None:
        answer["usage"] = usage
    for choice in answer["choices"]:  # the merge's bookkeeping
        for call in choice["message"].get("tool_calls") or ():
            call.pop("_index", None)
    return answer


def _merge_delta(message: JSONObject, delta: JSONObject) -> None:
    for key, value in delta.items():
        if key == "tool_calls" and isinstance(value, list):
            calls = message.setdefault("tool_calls", [])
            for call in value:
                _merge_call(calls, call)
        elif key == "role" and isinstance(value, str):
            message["role"] = value
        elif isinstance(value, str):
            message[key] = (message.get(key) or "") + value
        elif value is not None:
            message[key] = value


def _merge_call(calls: list[JSONObject], call: JSONObject) -> None:
    index = call.get("index", len(calls))
    found = next((c for c in calls if c["_index"] == index), None) if calls else None
    if found is None:
        found = {"_index": index, "id": None, "type": "function"}
        found["function"] = {"name": "", "arguments": ""}
        calls.append(found)
    if call.get("id"):
        found["id"] = call["id"]
    if call.get("type"):
        found["type"] = call["type"]
    function = call.get("function") or {}
    if function.get("name"):
        found["function"]["name"] += function["name"]
    if function.get("arguments"):
        found["function"]["arguments"] += function["arguments"]


def chunks_of(answer: JSONObject) -> list[JSONObject]:
    """A `chat.completion` as the chunks of a stream: per choice, the role, its texts in pieces
    (reasoning first), its tool calls, its finish reason; then the usage chunk."""
    envelope = {
        "id": answer.get("id", ""),
        "object": "chat.completion.chunk",
        "created": answer.get("created", 0),
        "model": answer.get("model", ""),
    }
    if "system_fingerprint" in answer:
        envelope["system_fingerprint"] = answer["system_fingerprint"]
    chunks: list[JSONObject] = []

    def emit(index: int, delta: JSONObject, finish: str | None = None) -> None:
        choice = {"index": index, "delta": delta, "finish_reason": finish}
        chunks.append({**envelope, "choices": [choice]})

    for choice in answer.get("choices") or ():
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        emit(index, {"role": message.get("role", "assistant"), "content": ""})
        for field in ("reasoning_content", "reasoning", "content", "refusal"):
            text = message.get(field)
            if isinstance(text, str):
                for start in range(0, len(text), PIECE_CHARS):
                    emit(index, {field: text[start : start + PIECE_CHARS]})
        for n, call in enumerate(message.get("tool_calls") or ()):
            emit(index, {"tool_calls": [{"index": n, **call}]})
        emit(index, {}, choice.get("finish_reason") or "stop")
    usage = answer.get("usage")
    if usage:
        chunks.append({**envelope, "choices": [], "usage": usage})
    return chunks


def is_complete(answer: JSONObject) -> bool:
    """A whole answer: every choice finished (never store a cut one)."""
    choices = answer.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    return all(isinstance(c, dict) and c.get("finish_reason") for c in choices)


def stream_finished(chunks: list[JSONObject]) -> bool:
    """A stream that carried a finish reason."""
    return any(c.get("finish_reason") for chunk in chunks for c in chunk.get("choices") or ())


async def replay(chunks: list[JSONObject]) -> AsyncGenerator[JSONObject, None]:
    for chunk in chunks:
        yield chunk
