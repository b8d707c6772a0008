"""A native Messages request (providers/native.py) to an Anthropic deployment: the client's body
as it sent it, with only the model replaced by the deployment's. Pure: no I/O, no state.

When no stage changed the request (its view is still the one derived from the native body), that
is all: thinking blocks and their signatures, `cache_control`, documents, `top_k`, unknown
(newer) fields all reach Anthropic as the client wrote them.

When a stage did change it (content rules redacted a message, the context stage added system
blocks, the router truncated the conversation), the change has to reach the upstream: the
original view and the changed one are both translated to Anthropic's shape, and each system
block and message of the changed translation that equals one of the original's (in order) is
replaced by the client's own block or message it came from; the others (the changed ones) are
sent as translated. The other fields (tools, thinking, sampling, metadata, ...) are the client's.
This matching needs one native message per translated message; when the client sent
consecutive messages of one role (Anthropic merges them, and so does the translation), only the
system blocks are matched and the messages are sent as translated.

The client's `anthropic-version` is sent upstream (the gateway's default when it sent none), and
its `anthropic-beta` when it sent one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ai_gateway.providers.anthropic_request import translate_request
from ai_gateway.providers.base import ChatRequest, JSONObject
from ai_gateway.providers.native import NativeRequest
from ai_gateway.schemas.chat import ChatCompletionRequest

PROVIDER = "anthropic"
PASSED_HEADERS = ("anthropic-version", "anthropic-beta")


def native_of(request: ChatRequest) -> NativeRequest | None:
    native = request.native
    return native if native is not None and native.provider == PROVIDER else None


def native_body(native: NativeRequest, request: ChatRequest, model: str) -> JSONObject:
    """The body to send (without `stream`) for `native`, whose current view is `request`."""
    body = {k: v for k, v in native.body.items() if k != "stream"}
    body["model"] = model
    if request.body is not native.view:
        _rebase(body, native, request)
    return body


def native_headers(native: NativeRequest, default_version: str) -> dict[str, str]:
    headers = {name: native.headers[name] for name in PASSED_HEADERS if name in native.headers}
    headers.setdefault("anthropic-version", default_version)
    return headers


def _rebase(body: JSONObject, native: NativeRequest, request: ChatRequest) -> None:
    view = native.view
    original = _translated(ChatRequest(view, ChatCompletionRequest.model_validate(view)))
    changed = _translated(request)
    system = native.body.get("system")
    client_blocks = [{"type": "text", "text": system}] if isinstance(system, str) else system
    merged = _merge(
        changed.get("system") or [],
        original.get("system") or [],
        client_blocks if isinstance(client_blocks, list) else [],
    )
    if not merged:
        body.pop("system", None)
    elif isinstance(system, str) and merged == client_blocks:
        body["system"] = system
    else:
        body["system"] = merged
    messages = native.body.get("messages")
    body["messages"] = _merge(
        changed["messages"], original["messages"], messages if isinstance(messages, list) else []
    )


def _translated(request: ChatRequest) -> JSONObject:
    # The model and max_tokens do not matter here: only system and messages are compared.
    return translate_request(request, "-", 1, None).body


def _merge(new: Sequence[Any], old: Sequence[Any], client: Sequence[Any]) -> list[Any]:
    """`new`, with each item that equals the next unmatched item of `old` replaced by the
    client's item at that position (`old` is the translation of `client`, item for item)."""
    if len(old) != len(client):
        return list(new)
    merged: list[Any] = []
    start = 0
    for item in new:
        for j in range(start, len(old)):
            if old[j] == item:
                merged.append(client[j])
                start = j + 1
                break
        else:
            merged.append(item)
    return merged
