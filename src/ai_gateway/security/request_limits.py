"""Size and shape limits on a request body, checked before the body is parsed into a model.

These checks run on the raw parsed JSON, before pydantic validation, token counting or any
provider adapter sees the body: they bound the work a single request can cause (deeply nested
JSON for recursive code, megabytes of text for the tokenizer, thousands of messages or inputs).
They only refuse what is too big; whether a value has the right type is the schemas' job, so
anything of an unexpected type is left alone here and reported by the schema afterwards.

Byte-size limits (413) are enforced where the body is read, not here.

Defaults, and why:

- `max_messages = 2048`: far above any real conversation, the same order as OpenAI's own limit.
- `max_message_chars = 1_000_000`: text characters in one message (all its text parts summed),
  about 250k tokens, more than every 200k-context model accepts; raise it for 1M-context models.
- `max_total_chars = None`: the body byte limit (10 MiB by default) already bounds the total.
- `max_tokens_cap = None`: each model's own output limit applies; set it to bound the cost of one
  request (`max_tokens` and `max_completion_tokens` above it are refused, not lowered).
- `max_json_depth = 64`: a chat body with a tool whose JSON schema nests ten objects deep is
  about 30 levels; 64 leaves room for that and stays far below Python's recursion limit, which
  recursive code further on (schema conversion in the provider adapters) would otherwise hit.
- `max_embedding_inputs = 2048`: OpenAI's limit for one embeddings request.
"""

from __future__ import annotations

from typing import Any

from ai_gateway.errors import InvalidRequestError
from ai_gateway.security.config import RequestLimits

_MAX_TOKENS_FIELDS = ("max_tokens", "max_completion_tokens")
# Exact classes (a set lookup is the cheapest test on the hot path); JSON parsers return these.
_CONTAINERS = frozenset((dict, list))


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """Whether `value` (parsed JSON) nests dicts and lists more than `limit` levels deep.

    A scalar has depth 0, `{}` and `[]` depth 1, `{"a": [1]}` depth 2. Iterative, level by level,
    and stops at the first level past the limit, so a 100,000-level body costs no recursion and
    no more work than its first `limit + 1` levels. Only `dict` and `list` count as containers
    (what a JSON parser returns); any other object is a leaf.
    """
    if value.__class__ not in _CONTAINERS:
        return limit < 0
    return _level_exceeds([value], 1, limit)


def _level_exceeds(level: list[Any], depth: int, limit: int) -> bool:
    """Whether the containers in `level`, all at `depth`, or anything below them, lie deeper
    than `limit`."""
    while level:
        if depth > limit:
            return True
        below: list[Any] = []
        for node in level:
            children = node.values() if node.__class__ is dict else node
            below += [child for child in children if child.__class__ in _CONTAINERS]
        level = below
        depth += 1
    return False


def _text_chars(content: Any) -> int:
    """Characters of text in one message's `content`: a string, or a list of parts whose
    `text` strings are summed. Anything else counts as 0 (the schema reports it)."""
    if content.__class__ is str:
        return len(content)
    if content.__class__ is not list:
        return 0
    total = 0
    for part in content:
        if part.__class__ is dict:
            text = part.get("text")
            if text.__class__ is str:
                total += len(text)
    return total


def _too_deep(limit: int) -> InvalidRequestError:
    return InvalidRequestError(
        f"The request body nests JSON objects and arrays more than {limit} levels deep; "
        f"this gateway accepts at most {limit}.",
        code="json_too_deep",
    )


def _check_messages(messages: list[Any], limits: RequestLimits) -> None:
    """Count and size the messages, and check the depth of what they hold, in one pass."""
    count = len(messages)
    if count > limits.max_messages:
        raise InvalidRequestError(
            f"'messages' has {count} entries; this gateway accepts at most {limits.max_messages}.",
            param="messages",
            code="too_many_messages",
        )
    per_message = limits.max_message_chars
    total = 0
    inside: list[Any] = []  # containers held by the messages: depth 4 of the body
    keep = inside.append
    for index, message in enumerate(messages):
        if message.__class__ is not dict:
            if message.__class__ is list:
                inside += [item for item in message if item.__class__ in _CONTAINERS]
            continue
        # Plain loops: cheaper than comprehensions for the two or three values of a message.
        for value in message.values():
            if value.__class__ in _CONTAINERS:
                keep(value)
        content = message.get("content")
        chars = len(content) if content.__class__ is str else _text_chars(content)
        if chars > per_message:
            raise InvalidRequestError(
                f"'messages[{index}].content' has {chars} characters of text; this gateway "
                f"accepts at most {per_message} per message.",
                param=f"messages[{index}].content",
                code="message_too_long",
            )
        total += chars
    if inside and _level_exceeds(inside, 4, limits.max_json_depth):
        raise _too_deep(limits.max_json_depth)
    cap = limits.max_total_chars
    if cap is not None and total > cap:
        raise InvalidRequestError(
            f"'messages' hold {total} characters of text in all; this gateway accepts at most "
            f"{cap}.",
            param="messages",
            code="messages_too_long",
        )


def _check_max_tokens(body: dict[str, Any], cap: int) -> None:
    for field in _MAX_TOKENS_FIELDS:
        value = body.get(field)
        if value.__class__ is int and value > cap:
            raise InvalidRequestError(
                f"'{field}' is {value}; this gateway accepts at most {cap}.",
                param=field,
                code="max_tokens_too_large",
            )


def check_chat(body: dict[str, Any], limits: RequestLimits) -> None:
    """Refuse a Chat Completions body that exceeds `limits` with a 400 naming the field, the
    limit and the actual value. A body that is not a JSON object is left to the schema."""
    if body.__class__ is not dict:
        return
    messages = body.get("messages")
    if messages.__class__ is list:
        _check_messages(messages, limits)
        # The messages' own depth is checked; everything else in the body starts at depth 2.
        rest: list[Any] = []
        for value in body.values():
            if value.__class__ in _CONTAINERS and value is not messages:
                rest.append(value)
        if rest and _level_exceeds(rest, 2, limits.max_json_depth):
            raise _too_deep(limits.max_json_depth)
    elif json_depth_exceeds(body, limits.max_json_depth):
        raise _too_deep(limits.max_json_depth)
    if limits.max_tokens_cap is not None:
        _check_max_tokens(body, limits.max_tokens_cap)


def check_embeddings(body: dict[str, Any], limits: RequestLimits) -> None:
    """Refuse an Embeddings body with too many inputs or nested too deep (400)."""
    if body.__class__ is not dict:
        return
    inputs = body.get("input")
    if inputs.__class__ is list and len(inputs) > limits.max_embedding_inputs:
        raise InvalidRequestError(
            f"'input' has {len(inputs)} items; this gateway accepts at most "
            f"{limits.max_embedding_inputs}.",
            param="input",
            code="too_many_inputs",
        )
    if json_depth_exceeds(body, limits.max_json_depth):
        raise _too_deep(limits.max_json_depth)


__all__ = [
    "check_chat",
    "check_embeddings",
    "json_depth_exceeds",
]
