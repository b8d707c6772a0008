"""A Gemini ``GenerateContentResponse`` as an OpenAI ``chat.completion`` (pure, no I/O).

- One choice per candidate (``index``); its text parts joined; ``thought: true`` parts (thought
  summaries of thinking models) are left out of the content, as OpenAI keeps reasoning out of
  ``content``; their tokens are reported as ``reasoning_tokens``.
- ``functionCall`` parts -> ``tool_calls`` with generated ids (``call_<hex>``) and compact JSON
  arguments. A part's ``thoughtSignature`` rides along as
  ``tool_calls[i].extra_content.google.thought_signature`` (the field Google's own OpenAI
  compatibility layer uses), so a client that sends the message back returns it to Gemini.
- Parts the adapter never asks for (``executableCode``, ``inlineData`` output, ...) are ignored.
- ``finishReason``: STOP -> ``stop``; MAX_TOKENS -> ``length``; SAFETY, RECITATION, BLOCKLIST,
  PROHIBITED_CONTENT, SPII, IMAGE_SAFETY, IMAGE_PROHIBITED_CONTENT, IMAGE_RECITATION ->
  ``content_filter``. STOP and every other reason (OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL,
  reasons added later, ...) -> ``tool_calls`` when the candidate called functions, else ``stop``.
- ``usageMetadata``: ``prompt_tokens = promptTokenCount`` (cached tokens included, as in OpenAI),
  ``completion_tokens = candidatesTokenCount + thoughtsTokenCount``, ``reasoning_tokens =
  thoughtsTokenCount``, ``cached_tokens = cachedContentTokenCount``, ``total_tokens`` their sum.
  ``toolUsePromptTokenCount`` only arises with Google's built-in tools, which are never enabled.
- A prompt Gemini refused (``promptFeedback.blockReason`` and no candidates) raises
  `ContentFilteredError` (400) naming the reason: never an empty answer.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ai_gateway.errors import ContentFilteredError, UpstreamProtocolError
from ai_gateway.providers.base import JSONObject
from ai_gateway.routing.deployments import Deployment

CONTENT_FILTER_REASONS = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    }
)


def finish_reason(reason: str, has_tool_calls: bool) -> str:
    if reason == "MAX_TOKENS":
        return "length"
    if reason in CONTENT_FILTER_REASONS:
        return "content_filter"
    return "tool_calls" if has_tool_calls else "stop"


def _count(meta: Mapping[str, Any], name: str) -> int:
    value = meta.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage(meta: object) -> JSONObject:
    """OpenAI usage from ``usageMetadata`` (zero counts are omitted in Google's JSON)."""
    meta = meta if isinstance(meta, Mapping) else {}
    prompt = _count(meta, "promptTokenCount")
    thoughts = _count(meta, "thoughtsTokenCount")
    completion = _count(meta, "candidatesTokenCount") + thoughts
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": _count(meta, "cachedContentTokenCount")},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


def new_call_id() -> str:
    return f"call_{secrets.token_hex(12)}"


def completion_id(data: Mapping[str, Any]) -> str:
    response_id = data.get("responseId")
    if isinstance(response_id, str) and response_id:
        return f"chatcmpl-{response_id}"
    return f"chatcmpl-{secrets.token_hex(12)}"


def model_name(deployment: Deployment, data: Mapping[str, Any]) -> str:
    version = data.get("modelVersion")
    return version if isinstance(version, str) and version else deployment.model


def tool_call(call: Mapping[str, Any], signature: object) -> JSONObject:
    args = call.get("args")
    result: JSONObject = {
        "id": new_call_id(),
        "type": "function",
        "function": {
            "name": str(call.get("name") or ""),
            "arguments": orjson.dumps(args if isinstance(args, dict) else {}).decode(),
        },
    }
    if isinstance(signature, str) and signature:
        result["extra_content"] = {"google": {"thought_signature": signature}}
    return result


@dataclass(slots=True)
class CandidateParts:
    """What one candidate (or one stream event of it) carries."""

    text: str = ""
    tool_calls: list[JSONObject] = field(default_factory=list)


def candidate_parts(candidate: Mapping[str, Any]) -> CandidateParts:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, Mapping) else None
    found = CandidateParts()
    texts: list[str] = []
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, Mapping) or part.get("thought") is True:
            continue
        text = part.get("text")
        if isinstance(text, str):
            texts.append(text)
        call = part.get("functionCall")
        if isinstance(call, Mapping):
            found.tool_calls.append(tool_call(call, part.get("thoughtSignature")))
    found.text = "".join(texts)
    return found


def candidates(data: Mapping[str, Any]) -> list[tuple[int, Mapping[str, Any]]]:
    """(choice index, candidate) pairs, in order; a missing ``index`` is the position."""
    raw = data.get("candidates")
    pairs = []
    for position, candidate in enumerate(raw if isinstance(raw, list) else []):
        if isinstance(candidate, Mapping):
            index = candidate.get("index")
            pairs.append((index if isinstance(index, int) else position, candidate))
    return pairs


def raise_if_prompt_blocked(deployment: Deployment, data: Mapping[str, Any]) -> None:
    feedback = data.get("promptFeedback")
    if not isinstance(feedback, Mapping) or candidates(data):
        return
    reason = feedback.get("blockReason")
    if not isinstance(reason, str) or not reason:
        return
    ratings = feedback.get("safetyRatings")
    blocked = [
        str(r.get("category"))
        for r in (ratings if isinstance(ratings, list) else [])
        if isinstance(r, Mapping) and r.get("blocked") is True
    ]
    why = f" ({', '.join(blocked)})" if blocked else ""
    raise ContentFilteredError(
        f"The upstream provider ({deployment.provider}, deployment '{deployment.id}') refused "
        f"the prompt: blockReason {reason}{why}. Change the prompt and try again."
    )


def completion(deployment: Deployment, data: object) -> JSONObject:
    """The ``chat.completion`` for a ``generateContent`` answer."""
    if not isinstance(data, Mapping):
        raise UpstreamProtocolError(
            f"The upstream provider (gemini, deployment '{deployment.id}') answered with "
            "something that is not a GenerateContentResponse."
        )
    raise_if_prompt_blocked(deployment, data)
    pairs = candidates(data)
    if not pairs:
        raise UpstreamProtocolError(
            f"The upstream provider (gemini, deployment '{deployment.id}') answered with no "
            "candidates and no reason."
        )
    choices = []
    for index, candidate in pairs:
        found = candidate_parts(candidate)
        message: JSONObject = {"role": "assistant", "content": found.text or None}
        if found.tool_calls:
            message["tool_calls"] = found.tool_calls
        reason = candidate.get("finishReason")
        choices.append(
            {
                "index": index,
                "message": message,
                "finish_reason": finish_reason(str(reason or "STOP"), bool(found.tool_calls)),
                "logprobs": None,
            }
        )
    return {
        "id": completion_id(data),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_name(deployment, data),
        "choices": choices,
        "usage": usage(data.get("usageMetadata")),
    }
