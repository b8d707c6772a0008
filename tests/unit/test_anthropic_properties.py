"""Property tests: the Anthropic translation loses nothing.

Requests: generated OpenAI conversations are translated, then read back with an independent
inverse written here (Anthropic body -> what it says); every text, role (after merging), tool
call and tool result of the original must be there, in order. Responses: a generated Anthropic
message keeps its text, tool calls and usage, and the same message sent as an event stream
(fragments and bytes split anywhere) reassembles into the same completion.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ai_gateway.providers.anthropic_request import translate_request
from ai_gateway.providers.anthropic_response import to_chat_completion
from ai_gateway.providers.anthropic_stream import StreamTranslator
from ai_gateway.providers.base import ChatRequest
from ai_gateway.schemas.chat import ChatCompletionRequest
from ai_gateway.schemas.validation import parse_body
from ai_gateway.streaming.sse import SSEDecoder

Json = dict[str, Any]

texts = st.text(min_size=1, max_size=12)
ids = st.from_regex(r"[A-Za-z0-9_]{1,10}", fullmatch=True).map(lambda s: f"call_{s}")
names = st.from_regex(r"[a-zA-Z][a-zA-Z0-9_]{0,9}", fullmatch=True)
leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
arguments = st.dictionaries(st.text(max_size=6), json_values, max_size=4)


def text_parts(items: list[str]) -> list[Json]:
    return [{"type": "text", "text": t} for t in items]


contents = texts | st.lists(texts, min_size=1, max_size=3).map(text_parts)
image_part = st.from_regex(r"[a-z]{1,8}", fullmatch=True).map(
    lambda s: {"type": "image_url", "image_url": {"url": f"https://img.example/{s}.png"}}
)
user_contents = texts | st.lists(
    texts.map(lambda t: {"type": "text", "text": t}) | image_part, min_size=1, max_size=3
)
tool_calls = st.lists(
    st.builds(
        lambda i, n, a: {
            "id": i,
            "type": "function",
            "function": {"name": n, "arguments": json.dumps(a)},
        },
        ids,
        names,
        arguments,
    ),
    min_size=1,
    max_size=3,
)
assistant_messages = st.one_of(
    contents.map(lambda c: {"role": "assistant", "content": c}),
    st.builds(
        lambda c, calls: {"role": "assistant", "content": c, "tool_calls": calls},
        st.none() | st.just("") | contents,
        tool_calls,
    ),
)
tool_messages = st.builds(
    lambda i, c: {"role": "tool", "tool_call_id": i, "content": c},
    ids,
    st.just("") | contents,
)
messages = st.lists(
    st.one_of(
        st.builds(
            lambda r, c: {"role": r, "content": c},
            st.sampled_from(["system", "developer"]),
            contents,
        ),
        user_contents.map(lambda c: {"role": "user", "content": c}),
        assistant_messages,
        tool_messages,
    ),
    min_size=1,
    max_size=10,
)


def texts_of(content: Any) -> list[str]:
    if content is None:
        return []
    if isinstance(content, str):
        return [content] if content else []
    return [p["text"] for p in content if p["type"] == "text" and p["text"]]


def images_of(content: Any) -> list[str]:
    if isinstance(content, list):
        return [p["image_url"]["url"] for p in content if p["type"] == "image_url"]
    return []


def what_openai_says(conversation: list[Json]) -> Json:
    """What the original conversation says, read straight from the OpenAI messages."""
    said: Json = {"system": [], "roles": [], "texts": [], "images": [], "calls": [], "results": []}
    for message in conversation:
        role = message["role"]
        if role in ("system", "developer"):
            said["system"] += texts_of(message["content"])
            continue
        if role == "tool":
            said["results"].append((message["tool_call_id"], texts_of(message["content"])))
            turn = "user"
        elif role == "user":
            said["texts"] += [("user", t) for t in texts_of(message["content"])]
            said["images"] += images_of(message["content"])
            turn = "user"
        else:
            said["texts"] += [("assistant", t) for t in texts_of(message["content"])]
            calls = message.get("tool_calls") or []
            said["calls"] += [
                (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
                for c in calls
            ]
            turn = "assistant"
            if not texts_of(message["content"]) and not calls:
                continue
        if not said["roles"] or said["roles"][-1] != turn:
            said["roles"].append(turn)
    return said


def what_anthropic_hears(body: Json) -> Json:
    """The independent inverse: what an Anthropic request body says."""
    heard: Json = {"system": [], "roles": [], "texts": [], "images": [], "calls": [], "results": []}
    heard["system"] = [block["text"] for block in body.get("system", [])]
    for message in body["messages"]:
        heard["roles"].append(message["role"])
        for block in message["content"]:
            if block["type"] == "text":
                heard["texts"].append((message["role"], block["text"]))
            elif block["type"] == "image":
                heard["images"].append(block["source"]["url"])
            elif block["type"] == "tool_use":
                heard["calls"].append((block["id"], block["name"], block["input"]))
            elif block["type"] == "tool_result":
                content = block.get("content", [])
                result = [content] if isinstance(content, str) else [b["text"] for b in content]
                heard["results"].append((block["tool_use_id"], result))
    return heard


@given(messages)
@settings(deadline=None)
def test_request_translation_keeps_everything(conversation: list[Json]) -> None:
    body = {"model": "claude", "messages": conversation}
    request = ChatRequest(body=body, parsed=parse_body(ChatCompletionRequest, body))
    translated = translate_request(request, "claude-x", 100).body
    assert what_anthropic_hears(translated) == what_openai_says(conversation)
    roles = [m["role"] for m in translated["messages"]]
    assert all(a != b for a, b in itertools.pairwise(roles)), "turns must alternate"
    for turn in translated["messages"]:
        kinds = [block["type"] == "tool_result" for block in turn["content"]]
        assert kinds == sorted(kinds, reverse=True), "tool results come first in a turn"


# -- responses ------------------------------------------------------------------------------------

text_blocks = texts.map(lambda t: {"type": "text", "text": t})
tool_use_blocks = st.builds(
    lambda i, n, a: {"type": "tool_use", "id": i, "name": n, "input": a}, ids, names, arguments
)
thinking_blocks = texts.map(lambda t: {"type": "thinking", "thinking": t, "signature": "sig"})
counts = st.integers(min_value=0, max_value=10**6)
usages = st.fixed_dictionaries(
    {"input_tokens": counts, "output_tokens": counts},
    optional={"cache_read_input_tokens": counts, "cache_creation_input_tokens": counts},
)
anthropic_messages = st.builds(
    lambda content, stop, usage: {
        "id": "msg_x",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    },
    st.lists(text_blocks | tool_use_blocks | thinking_blocks, max_size=5),
    st.sampled_from(["end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal"]),
    usages,
)


@given(anthropic_messages)
def test_response_translation_keeps_text_tool_calls_and_usage(message: Json) -> None:
    reply = to_chat_completion(message, None, "anthropic")
    said = reply["choices"][0]["message"]
    text = "".join(b["text"] for b in message["content"] if b["type"] == "text")
    uses = [b for b in message["content"] if b["type"] == "tool_use"]
    assert (said["content"] or "") == text
    calls = said.get("tool_calls", [])
    assert [
        (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls
    ] == [(b["id"], b["name"], b["input"]) for b in uses]
    usage, raw = reply["usage"], message["usage"]
    read = raw.get("cache_read_input_tokens", 0)
    write = raw.get("cache_creation_input_tokens", 0)
    assert usage["prompt_tokens"] == raw["input_tokens"] + read + write
    assert usage["completion_tokens"] == raw["output_tokens"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert (usage["cache_read_input_tokens"], usage["cache_creation_input_tokens"]) == (read, write)
    assert usage["prompt_tokens_details"] == {"cached_tokens": read}


def cut(text: str, points: list[int]) -> list[str]:
    marks = sorted({p % (len(text) + 1) for p in points} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(marks)]


def event(kind: str, data: Json) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


def as_stream(message: Json, points: list[int]) -> bytes:
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "usage": {**message["usage"], "output_tokens": 1},
    }
    out = [event("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(message["content"]):
        opening = {**block, "input": {}} if block["type"] == "tool_use" else {**block, "text": ""}
        if block["type"] == "thinking":
            opening = {"type": "thinking", "thinking": ""}
        out.append(
            event(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": opening},
            )
        )
        if block["type"] == "text":
            deltas = [{"type": "text_delta", "text": t} for t in cut(block["text"], points)]
        elif block["type"] == "tool_use":
            deltas = [
                {"type": "input_json_delta", "partial_json": j}
                for j in cut(json.dumps(block["input"]), points)
            ]
        else:
            deltas = [{"type": "thinking_delta", "thinking": block["thinking"]}]
        out += [
            event(
                "content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}
            )
            for d in deltas
        ]
        out.append(event("content_block_stop", {"type": "content_block_stop", "index": index}))
    end = {
        "type": "message_delta",
        "delta": {"stop_reason": message["stop_reason"]},
        "usage": {"output_tokens": message["usage"]["output_tokens"]},
    }
    out += [event("message_delta", end), event("message_stop", {"type": "message_stop"})]
    return b"".join(out)


def reassemble(chunks: list[Json]) -> Json:
    content, calls, finish, usage = "", {}, None, None
    for chunk in chunks:
        usage = chunk.get("usage", usage)
        for choice in chunk["choices"]:
            delta = choice["delta"]
            content += delta.get("content") or ""
            finish = choice["finish_reason"] or finish
            for call in delta.get("tool_calls", []):
                slot = calls.setdefault(call["index"], {"id": None, "name": None, "arguments": ""})
                slot["id"] = call.get("id", slot["id"])
                slot["name"] = call.get("function", {}).get("name", slot["name"])
                slot["arguments"] += call.get("function", {}).get("arguments", "")
    ordered = [calls[i] for i in sorted(calls)]
    return {
        "content": content,
        "calls": [(c["id"], c["name"], json.loads(c["arguments"])) for c in ordered],
        "finish": finish,
        "usage": usage,
    }


@given(
    anthropic_messages, st.lists(st.integers(min_value=0, max_value=10**4), max_size=6), st.data()
)
@settings(deadline=None)
def test_stream_reassembles_into_the_same_completion(
    message: Json, points: list[int], data: st.DataObject
) -> None:
    raw = as_stream(message, points)
    byte_cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(raw)), max_size=12))
    marks = sorted({0, len(raw), *byte_cuts})
    decoder, translator, chunks = SSEDecoder(), StreamTranslator("anthropic"), []
    for a, b in itertools.pairwise(marks):
        for ev in decoder.feed(raw[a:b]):
            chunks += translator.feed(ev)
    assert translator.finished
    ids = {(c["id"], c["created"], c["model"]) for c in chunks}
    assert len(ids) == 1
    streamed = reassemble(chunks)
    reply = to_chat_completion(message, None, "anthropic")
    said = reply["choices"][0]["message"]
    assert streamed["content"] == (said["content"] or "")
    assert streamed["calls"] == [
        (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
        for c in said.get("tool_calls", [])
    ]
    assert streamed["finish"] == reply["choices"][0]["finish_reason"]
    assert streamed["usage"] == reply["usage"]
