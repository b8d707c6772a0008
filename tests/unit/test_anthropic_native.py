"""A native Messages request to an Anthropic deployment (providers/anthropic_native.py): sent as
the client wrote it, and, when a stage changed its view, with only the changed parts translated."""

from __future__ import annotations

from typing import Any

from ai_gateway.messages.request import to_view
from ai_gateway.providers.anthropic_native import native_body, native_headers
from ai_gateway.providers.base import ChatRequest
from ai_gateway.providers.native import NativeRequest
from ai_gateway.schemas.chat import ChatCompletionRequest

SIGNED = {"type": "thinking", "thinking": "hm", "signature": "S"}


def native_of(body: dict[str, Any]) -> tuple[NativeRequest, ChatRequest]:
    view, unsupported = to_view(body)
    native = NativeRequest("anthropic", body, view, {"anthropic-beta": "b1"}, unsupported)
    return native, ChatRequest(view, ChatCompletionRequest.model_validate(view), native)


def changed(request: ChatRequest, **update: Any) -> ChatRequest:
    body = {**request.body, **update}
    return ChatRequest(body, ChatCompletionRequest.model_validate(body), request.native)


BODY: dict[str, Any] = {
    "model": "claude",
    "max_tokens": 100,
    "stream": True,
    "system": "Be brief.",
    "top_k": 4,
    "messages": [
        {
            "role": "user",
            "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
        },
        {"role": "assistant", "content": [SIGNED, {"type": "text", "text": "Hello"}]},
        {"role": "user", "content": "mail a@b.io"},
    ],
}


def test_unchanged_is_sent_as_is() -> None:
    native, request = native_of(BODY)
    sent = native_body(native, request, "claude-x-1")
    assert sent == {**{k: v for k, v in BODY.items() if k != "stream"}, "model": "claude-x-1"}
    assert native_headers(native, "2023-06-01") == {
        "anthropic-beta": "b1",
        "anthropic-version": "2023-06-01",
    }


def test_a_changed_message_is_translated_the_rest_kept() -> None:
    native, request = native_of(BODY)
    messages = [*request.body["messages"][:-1], {"role": "user", "content": "mail [R]"}]
    sent = native_body(native, changed(request, messages=messages), "claude-x-1")
    assert sent["messages"][:2] == BODY["messages"][:2]  # the signature and cache_control kept
    assert sent["messages"][2] == {
        "role": "user",
        "content": [{"type": "text", "text": "mail [R]"}],
    }
    assert sent["system"] == "Be brief."
    assert sent["top_k"] == 4


def test_added_system_blocks_keep_the_clients() -> None:
    body = {
        **BODY,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
    }
    native, request = native_of(body)
    context = {"role": "system", "content": "Context: the user likes Go."}
    sent = native_body(native, changed(request, messages=[context, *request.body["messages"]]), "m")
    assert sent["system"] == [
        {"type": "text", "text": "Context: the user likes Go."},
        *body["system"],
    ]
    assert sent["messages"] == body["messages"]


def test_consecutive_turns_of_one_role_are_sent_translated() -> None:
    body = {
        **BODY,
        "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
    }
    native, request = native_of(body)
    messages = [{"role": "user", "content": "a"}, {"role": "user", "content": "c"}]
    sent = native_body(native, changed(request, messages=messages), "m")
    assert sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "c"}]}
    ]
