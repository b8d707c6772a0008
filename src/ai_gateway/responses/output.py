"""The chain's chat answer as a Response object (the renderer's half of the Responses API, for a
JSON answer; `events.py` does a stream). Pure: no I/O, no state.

Output items, in order: a `file_search_call` (when the request had a file_search tool and the
gateway searched; its `results` only when `include` asks for them), a `reasoning` item (when the
upstream returned reasoning text: `reasoning_content`, as OpenAI-compatible reasoning models
send it), a `message` with an `output_text` part (and a `refusal` part for a refusal), and one
`function_call` per tool call. `finish_reason` `length` makes the response `incomplete` with
reason `max_output_tokens`, `content_filter` with reason `content_filter`.

Usage in the Responses shape: `input_tokens` (with `cached_tokens` and `cache_write_tokens`),
`output_tokens` (with `reasoning_tokens`), `total_tokens`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ai_gateway.providers.base import JSONObject
from ai_gateway.responses import ids
from ai_gateway.responses.records import JSONItem

INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def usage(chat: Any) -> JSONObject | None:
    """A chat usage object in the Responses shape (None stays None)."""
    if not isinstance(chat, Mapping):
        return None
    prompt = int(chat.get("prompt_tokens") or 0)
    completion = int(chat.get("completion_tokens") or 0)
    prompt_details = chat.get("prompt_tokens_details") or {}
    completion_details = chat.get("completion_tokens_details") or {}
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": int(prompt_details.get("cached_tokens") or 0),
            "cache_write_tokens": int(chat.get("cache_creation_input_tokens") or 0),
        },
        "output_tokens": completion,
        "output_tokens_details": {
            "reasoning_tokens": int(completion_details.get("reasoning_tokens") or 0)
        },
        "total_tokens": int(chat.get("total_tokens") or prompt + completion),
    }


def reasoning_text(message: Mapping[str, Any]) -> str:
    value = message.get("reasoning_content")
    if not isinstance(value, str):
        value = message.get("reasoning")
    return value if isinstance(value, str) else ""


def reasoning_item(item_id: str, text: str) -> JSONItem:
    return {"id": item_id, "type": "reasoning", "summary": [{"type": "summary_text", "text": text}]}


def text_part(text: str, logprobs: list[Any] | None = None) -> JSONItem:
    part: JSONItem = {"type": "output_text", "text": text, "annotations": []}
    if logprobs is not None:
        part["logprobs"] = logprobs
    return part


def message_item(item_id: str, content: list[JSONItem], status: str = "completed") -> JSONItem:
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": content,
    }


def function_call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str = "completed"
) -> JSONItem:
    return {
        "id": item_id,
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def file_search_item(
    query: str, hits: Iterable[Any], with_results: bool, item_id: str | None = None
) -> JSONItem:
    """The search the gateway ran. `hits`: rag.index.IndexHit objects (duck-typed, so that this
    module needs nothing of RAG)."""
    results = (
        [
            {
                "file_id": hit.file_id,
                "filename": hit.filename,
                "score": hit.score,
                "text": hit.text,
                "attributes": dict(hit.attributes),
            }
            for hit in hits
        ]
        if with_results
        else None
    )
    return {
        "id": item_id or ids.new_id(ids.FILE_SEARCH),
        "type": "file_search_call",
        "status": "completed",
        "queries": [query] if query else [],
        "results": results,
    }


def output_items(answer: JSONObject, with_logprobs: bool) -> tuple[list[JSONItem], str | None]:
    """The output items of a chat completion, and its finish reason."""
    choices = answer.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    items: list[JSONItem] = []
    thought = reasoning_text(message)
    if thought:
        items.append(reasoning_item(ids.new_id(ids.REASONING), thought))
    content: list[JSONItem] = []
    text = message.get("content")
    if isinstance(text, str) and text:
        logprobs = (choice.get("logprobs") or {}).get("content") if with_logprobs else None
        content.append(text_part(text, list(logprobs or []) if with_logprobs else None))
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        content.append({"type": "refusal", "refusal": refusal})
    if content:
        items.append(message_item(ids.new_id(ids.MESSAGE), content))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        items.append(
            function_call_item(
                ids.new_id(ids.FUNCTION_CALL),
                str(call.get("id") or ids.new_id("call")),
                str(function.get("name") or ""),
                str(function.get("arguments") or ""),
            )
        )
    reason = choice.get("finish_reason")
    return items, reason if isinstance(reason, str) else None


def response_object(
    response_id: str,
    created_at: int,
    model: str,
    echo: JSONObject,
    *,
    status: str,
    output: list[JSONItem],
    usage: JSONObject | None = None,
    finish_reason: str | None = None,
    error: JSONObject | None = None,
    completed_at: int | None = None,
) -> JSONObject:
    """The Response object. With a `finish_reason` of `length` or `content_filter` a completed
    response is `incomplete`, with the reason."""
    incomplete = INCOMPLETE.get(finish_reason or "")
    if status == "completed" and incomplete is not None:
        status = "incomplete"
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "completed_at": completed_at if status == "completed" else None,
        "error": error,
        "incomplete_details": {"reason": incomplete} if status == "incomplete" else None,
        "model": model,
        "output": output,
        "usage": usage,
        **echo,
    }


def output_text(output: Iterable[JSONItem]) -> str:
    """The text of every output_text part, as the SDKs' `output_text` joins it."""
    return "".join(
        part.get("text", "")
        for item in output
        if item.get("type") == "message"
        for part in item.get("content") or ()
        if part.get("type") == "output_text"
    )
