"""Property tests: the Gemini translation loses nothing, for any conversation or response.

Each test reads the translation back with an inverse written here, independently of the adapter,
and compares it with what was generated.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ai_gateway.errors import InvalidRequestError
from ai_gateway.providers.gemini_request import build_request
from ai_gateway.providers.gemini_response import completion
from ai_gateway.providers.gemini_stream import translate_sse
from ai_gateway.routing.deployments import Deployment
from ai_gateway.schemas.chat import ChatCompletionRequest

DEP = Deployment(id="g/0", group="g", provider="gemini", model="gemini-x", api_base="u")
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
names = st.from_regex(r"[a-z_][a-z0-9_]{0,9}", fullmatch=True)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
json_objects = st.dictionaries(texts, json_values, max_size=4)
images = st.sampled_from(
    ["data:image/png;base64,iVBORw0KGgo=", "https://example.com/a.jpg", "https://example.com/x"]
)
user_parts = st.one_of(
    texts.map(lambda t: {"type": "text", "text": t}),
    images.map(lambda u: {"type": "image_url", "image_url": {"url": u}}),
)
tool_contents = texts | json_objects.map(json.dumps) | json_values.map(json.dumps)


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    calls: list[tuple[str, str]] = []  # (id, name) of every tool call so far
    for position in range(draw(st.integers(1, 9))):
        kinds = ["system", "developer", "user", "assistant", "tools"] + (["tool"] if calls else [])
        kind = draw(st.sampled_from(kinds))
        if kind in ("system", "developer"):
            content: Any = draw(texts | st.lists(texts.map(lambda t: {"type": "text", "text": t})))
            messages.append({"role": kind, "content": content})
        elif kind == "user":
            content = draw(texts | st.lists(user_parts, min_size=1, max_size=3))
            messages.append({"role": "user", "content": content})
        elif kind == "assistant":
            messages.append({"role": "assistant", "content": draw(texts)})
        elif kind == "tools":
            made = []
            for k in range(draw(st.integers(1, 3))):
                call_id, name = f"call_{position}_{k}", draw(names)
                made.append(
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": json.dumps(draw(json_objects))},
                    }
                )
                calls.append((call_id, name))
            messages.append(
                {"role": "assistant", "content": draw(st.none() | texts), "tool_calls": made}
            )
        else:
            call_id = draw(st.sampled_from(calls))[0]
            content = draw(tool_contents)
            if draw(st.booleans()):
                content = [{"type": "text", "text": content}]
            messages.append({"role": "tool", "tool_call_id": call_id, "content": content})
    return messages


def text_of(content: Any) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    return "".join(part["text"] for part in content)


def expected_items(messages: list[dict[str, Any]]) -> tuple[list[str], list[tuple[Any, ...]]]:
    """(system texts, (role, kind, ...) items) that the Gemini request must carry, in order."""
    system: list[str] = []
    items: list[tuple[Any, ...]] = []
    call_names = {}
    for message in messages:
        role, content = message["role"], message.get("content")
        if role in ("system", "developer"):
            if text_of(content):
                system.append(text_of(content))
        elif role == "user":
            for part in (
                [{"type": "text", "text": content}] if isinstance(content, str) else content
            ):
                if part["type"] == "text" and part["text"]:
                    items.append(("user", "text", part["text"]))
                elif part["type"] == "image_url":
                    items.append(("user", "media", part["image_url"]["url"]))
        elif role == "assistant":
            if content:
                items.append(("model", "text", content))
            for call in message.get("tool_calls", []):
                call_names[call["id"]] = call["function"]["name"]
                args = json.loads(call["function"]["arguments"])
                items.append(("model", "call", call["function"]["name"], args))
        else:
            items.append(("user", "result", call_names[message["tool_call_id"]], text_of(content)))
    return system, items


def read_back(body: dict[str, Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The inverse: the same facts, read from a Gemini GenerateContentRequest."""
    system = [part["text"] for part in body.get("systemInstruction", {}).get("parts", [])]
    items: list[tuple[Any, ...]] = []
    for content in body["contents"]:
        role = content["role"]
        for part in content["parts"]:
            if "text" in part:
                items.append((role, "text", part["text"]))
            elif "inlineData" in part:
                data = part["inlineData"]
                items.append((role, "media", f"data:{data['mimeType']};base64,{data['data']}"))
            elif "fileData" in part:
                items.append((role, "media", part["fileData"]["fileUri"]))
            elif "functionCall" in part:
                call = part["functionCall"]
                items.append((role, "call", call["name"], call["args"]))
            else:
                result = part["functionResponse"]
                items.append((role, "result", result["name"], result["response"]))
    return system, items


def same_item(sent: tuple[Any, ...], received: tuple[Any, ...]) -> bool:
    if sent[:3] != received[:3] or sent[1] != "result":
        return sent == received
    content, response = sent[3], received[3]
    try:
        parsed = json.loads(content)
    except ValueError:
        parsed = None
    return response == (parsed if isinstance(parsed, dict) else {"result": content})


@FAST
@given(conversations())
def test_a_conversation_keeps_every_text_role_call_and_result(
    messages: list[dict[str, Any]],
) -> None:
    request = ChatCompletionRequest.model_validate({"model": "m", "messages": messages})
    system, items = expected_items(messages)
    if not items:
        try:
            build_request(request)
        except InvalidRequestError:
            return
        raise AssertionError("a request with nothing to send must be refused")
    body = build_request(request)
    got_system, got_items = read_back(body)
    assert got_system == system
    assert len(got_items) == len(items)
    assert all(same_item(s, r) for s, r in zip(items, got_items, strict=True)), (items, got_items)
    roles = [content["role"] for content in body["contents"]]
    assert all(a != b for a, b in itertools.pairwise(roles))  # merged: roles alternate
    assert all(content["parts"] for content in body["contents"])


# --- responses --------------------------------------------------------------------------------

gemini_parts = st.one_of(
    texts.map(lambda t: {"text": t}),
    texts.map(lambda t: {"text": t, "thought": True}),
    st.tuples(names, json_objects).map(lambda c: {"functionCall": {"name": c[0], "args": c[1]}}),
)
finishes = st.sampled_from(["STOP", "MAX_TOKENS", "SAFETY", "RECITATION", "OTHER", "SPII"])
counts = st.integers(0, 10**7)


@st.composite
def responses(draw: st.DrawFn) -> tuple[list[list[dict[str, Any]]], list[str], dict[str, int]]:
    parts = draw(st.lists(st.lists(gemini_parts, max_size=6), min_size=1, max_size=3))
    reasons = [draw(finishes) for _ in parts]
    usage = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "promptTokenCount": counts,
                "candidatesTokenCount": counts,
                "thoughtsTokenCount": counts,
                "cachedContentTokenCount": counts,
            },
        )
    )
    return parts, reasons, usage


def expected_choice(parts: list[dict[str, Any]], reason: str) -> tuple[Any, ...]:
    text = "".join(p["text"] for p in parts if "text" in p and not p.get("thought"))
    calls = [
        (p["functionCall"]["name"], p["functionCall"]["args"]) for p in parts if "functionCall" in p
    ]
    if reason == "MAX_TOKENS":
        finish = "length"
    elif reason in ("SAFETY", "RECITATION", "SPII"):
        finish = "content_filter"
    else:
        finish = "tool_calls" if calls else "stop"
    return text, calls, finish


def check_usage(usage: dict[str, Any], meta: dict[str, int]) -> None:
    thoughts = meta.get("thoughtsTokenCount", 0)
    assert usage["prompt_tokens"] == meta.get("promptTokenCount", 0)
    assert usage["completion_tokens"] == meta.get("candidatesTokenCount", 0) + thoughts
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] == thoughts
    assert usage["prompt_tokens_details"]["cached_tokens"] == meta.get("cachedContentTokenCount", 0)


@FAST
@given(responses())
def test_a_response_keeps_text_function_calls_and_usage(
    generated: tuple[list[list[dict[str, Any]]], list[str], dict[str, int]],
) -> None:
    parts, reasons, meta = generated
    data = {
        "candidates": [
            {"content": {"role": "model", "parts": p}, "index": i, "finishReason": r}
            for i, (p, r) in enumerate(zip(parts, reasons, strict=True))
        ],
        "usageMetadata": meta,
    }
    result = completion(DEP, data)
    for i, choice in enumerate(result["choices"]):
        text, calls, finish = expected_choice(parts[i], reasons[i])
        message = choice["message"]
        assert choice["index"] == i
        assert (message["content"] or "") == text
        got = [
            (c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in message.get("tool_calls", [])
        ]
        assert got == calls
        assert choice["finish_reason"] == finish
    check_usage(result["usage"], meta)


async def sse_body(events: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    for event in events:
        yield f"data: {json.dumps(event)}\r\n\r\n".encode()


@FAST
@given(responses(), st.data())
def test_a_streamed_response_says_the_same(
    generated: tuple[list[list[dict[str, Any]]], list[str], dict[str, int]], data: st.DataObject
) -> None:
    parts, reasons, meta = generated
    # Cut each candidate's parts into a random number of events; finish and usage come last.
    steps = data.draw(st.integers(1, 4))
    events: list[dict[str, Any]] = [{"candidates": []} for _ in range(steps)]
    for i, candidate_parts in enumerate(parts):
        cuts = sorted(
            data.draw(
                st.lists(
                    st.integers(0, len(candidate_parts)), min_size=steps - 1, max_size=steps - 1
                )
            )
        )
        for step, (start, end) in enumerate(
            zip([0, *cuts], [*cuts, len(candidate_parts)], strict=True)
        ):
            events[step]["candidates"].append(
                {"content": {"role": "model", "parts": candidate_parts[start:end]}, "index": i}
            )
    for i, reason in enumerate(reasons):
        events[-1]["candidates"][i]["finishReason"] = reason
    events[-1]["usageMetadata"] = meta

    async def run() -> list[dict[str, Any]]:
        return [chunk async for chunk in translate_sse(DEP, sse_body(events))]

    chunks = asyncio.run(run())
    for i in range(len(parts)):
        text, calls, finish = expected_choice(parts[i], reasons[i])
        choices = [c for chunk in chunks for c in chunk["choices"] if c["index"] == i]
        assert choices[0]["delta"]["role"] == "assistant"
        assert "".join(c["delta"].get("content") or "" for c in choices) == text
        deltas = [d for c in choices for d in c["delta"].get("tool_calls", [])]
        assert [d["index"] for d in deltas] == list(range(len(calls)))
        assert [
            (d["function"]["name"], json.loads(d["function"]["arguments"])) for d in deltas
        ] == calls
        assert [c["finish_reason"] for c in choices if c["finish_reason"]] == [finish]
    assert chunks[-1]["choices"] == []
    check_usage(chunks[-1]["usage"], meta)
