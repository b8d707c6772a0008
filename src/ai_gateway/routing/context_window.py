"""The context window manager: does the prompt fit the chosen model's window?

Before a request is sent, its prompt is counted against the deployment's context window
minus the tokens reserved for the reply. What happens when it does not fit is the
request's (``"context_strategy"``) or the model group's choice:

- ``error`` (the default) and ``fallback`` both get :class:`TooLarge`; the router raises
  :meth:`ContextWindowManager.too_large_error` (a 400 naming the sizes) or tries the
  context-window fallbacks / a larger model.
- ``truncate-oldest`` gets :class:`Truncated`: every system and developer message and the
  last user message are kept; the oldest other messages are dropped until the prompt fits.
  An assistant message with ``tool_calls`` and the ``tool`` messages answering it go
  together, and the kept history never opens with a tool result. Before the last user
  message history is dropped a whole turn at a time, so what is kept starts with a user
  message (Gemini rejects a function call that does not follow a user or function turn);
  after it, the assistant steps of the current turn go one at a time, oldest first. When
  even the kept messages alone do not fit, the answer is :class:`TooLarge`.

Models the registry does not know (for example a local Ollama model) have no known window:
the check is skipped and the answer is ``Fits(None)``.

This runs on every request, so the common case is cheap: :func:`prompt_upper_bound` bounds
the count from above using only UTF-8 lengths, and only a prompt whose bound exceeds the
budget is tokenized.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import orjson

from ai_gateway.errors import InvalidRequestError
from ai_gateway.model_registry import ModelInfo, ModelRegistry
from ai_gateway.routing.config import ContextStrategy
from ai_gateway.routing.deployments import Deployment
from ai_gateway.usage.tokens import IMAGE_TOKENS_ESTIMATE, TokenCounter, encoding_for

__all__ = [
    "ContextDecision",
    "ContextWindowManager",
    "Fits",
    "TooLarge",
    "Truncated",
    "prompt_upper_bound",
    "reserved_output",
]

# Framing allowances of the upper bound, each at least twice what TokenCounter adds
# (3 to prime the reply; per message 3 or 4, +1 for a name; per tool call 3 or 4; 12 for tool
# definitions), so that a small change to the counter's framing does not break the bound.
PRIMING_BOUND = 8
MESSAGE_BOUND = 10
TOOL_CALL_BOUND = 8
TOOLS_BOUND = 32

_PINNED_ROLES = frozenset({"system", "developer"})
_RESULT_ROLES = frozenset({"tool", "function"})


@dataclass(frozen=True, slots=True)
class Fits:
    """The prompt fits. ``prompt_tokens`` is None when it was not counted: the model is not
    in the registry, or the cheap upper bound already fits."""

    prompt_tokens: int | None


@dataclass(frozen=True, slots=True)
class Truncated:
    """The prompt fits after dropping ``dropped`` of the oldest messages. ``messages`` is a
    new list (holding the request's own message objects); the request is not changed."""

    messages: list[dict[str, Any]]
    dropped: int
    prompt_tokens: int


@dataclass(frozen=True, slots=True)
class TooLarge:
    """``prompt_tokens`` (the request as sent) + ``reserved`` exceed ``window``."""

    prompt_tokens: int
    window: int
    reserved: int


ContextDecision: TypeAlias = Fits | Truncated | TooLarge


def _utf8(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def prompt_upper_bound(messages: Sequence[Any], tools: Sequence[Any] | None = None) -> int:
    """A number never below ``TokenCounter.count_messages`` for the same prompt, for any
    provider and model, computed without tokenizing.

    It walks the same texts as the counter. Per text of ``b`` UTF-8 bytes the counter gives
    at most ``ceil(1.2 * b)`` tokens: an OpenAI encoding is byte-level BPE, so it yields at
    most one token per byte; the estimate is ``max(ceil(b / 4), ceil(1.2 * o200k tokens))``
    and o200k tokens <= b. Since ``6b/5`` is a multiple of 0.2, the float product cannot
    cross an integer, so ``ceil(1.2 * b) <= 6b // 5 + 1``; summed over texts,
    ``sum(6b_i // 5 + 1) <= 6B // 5 + n``. Images count as a high-detail image; framing
    is covered twice over (see the ``*_BOUND`` constants). Tested with hypothesis.
    """
    size = 0  # UTF-8 bytes of every text the counter tokenizes
    texts = 0
    fixed = PRIMING_BOUND
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        fixed += MESSAGE_BOUND
        size += _utf8(str(message.get("role", "")))
        texts += 1
        name = message.get("name")
        if isinstance(name, str):
            size += _utf8(name)
            texts += 1
        content = message.get("content")
        if isinstance(content, str):
            size += _utf8(content)
            texts += 1
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, Mapping):
                    continue
                kind = part.get("type")
                if kind == "text":
                    size += _utf8(str(part.get("text", "")))
                    texts += 1
                elif kind == "refusal":
                    size += _utf8(str(part.get("refusal", "")))
                    texts += 1
                elif kind == "image_url":
                    fixed += IMAGE_TOKENS_ESTIMATE
        for call in message.get("tool_calls") or ():
            function = (call.get("function") if isinstance(call, Mapping) else None) or {}
            fixed += TOOL_CALL_BOUND
            size += _utf8(str(function.get("name", ""))) + _utf8(str(function.get("arguments", "")))
            texts += 2
    if tools:
        fixed += TOOLS_BOUND
        size += len(orjson.dumps(list(tools)))
        texts += 1
    return fixed + 6 * size // 5 + texts


def reserved_output(body: Mapping[str, Any], info: ModelInfo, default_reserve: int) -> int:
    """Tokens kept free for the reply: the request's ``max_completion_tokens`` or
    ``max_tokens``, else ``default_reserve`` capped at the model's output limit."""
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    limit = info.max_output_tokens
    return default_reserve if limit is None else min(default_reserve, limit)


class ContextWindowManager:
    """Checks prompts against context windows; see the module docstring."""

    def __init__(
        self, counter: TokenCounter, registry: ModelRegistry, default_reserve: int = 1024
    ) -> None:
        self._counter = counter
        self._registry = registry
        self._default_reserve = default_reserve

    def check(
        self, deployment: Deployment, body: Mapping[str, Any], strategy: ContextStrategy
    ) -> ContextDecision:
        info = self._registry.get(deployment.provider, deployment.model)
        if info is None or info.mode != "chat":
            # No known window, or not a chat model (its adapter refuses chat requests itself).
            return Fits(None)
        reserved = reserved_output(body, info, self._default_reserve)
        budget = info.context_window - reserved
        messages: Sequence[Any] = body.get("messages") or ()
        tools: Sequence[Any] | None = body.get("tools") or None
        if prompt_upper_bound(messages, tools) <= budget:
            return Fits(None)
        tokens = self._counter.count_messages(
            deployment.provider, deployment.model, messages, tools
        ).tokens
        if tokens <= budget:
            return Fits(tokens)
        if strategy == "truncate-oldest":
            truncated = self._truncate(deployment, messages, tools, budget)
            if truncated is not None:
                return truncated
        return TooLarge(tokens, info.context_window, reserved)

    def too_large_error(self, deployment: Deployment, decision: TooLarge) -> InvalidRequestError:
        """The 400 for a prompt that does not fit: the sizes, and what the client can do."""
        estimated = encoding_for(deployment.provider, deployment.model) is None
        prompt = f"{'about ' if estimated else ''}{decision.prompt_tokens:,} tokens"
        return InvalidRequestError(
            f"This request does not fit the context window of model '{deployment.group}': "
            f"the prompt is {prompt} and {decision.reserved:,} tokens are reserved for the "
            f"reply (max_completion_tokens or max_tokens, else the gateway's default), "
            f"{decision.prompt_tokens + decision.reserved:,} in all, but the window is "
            f"{decision.window:,} tokens. Shorten the messages, lower max_tokens, set "
            '"context_strategy" to "truncate-oldest" (drops the oldest turns; system '
            'messages and the last user message are always kept) or "fallback" (tries a '
            "model with a larger window), or use a model with a larger context window.",
            param="messages",
            code="context_length_exceeded",
        )

    def _truncate(
        self,
        deployment: Deployment,
        messages: Sequence[Any],
        tools: Sequence[Any] | None,
        budget: int,
    ) -> Truncated | None:
        provider, model = deployment.provider, deployment.model

        def count(part: Sequence[Any], with_tools: Sequence[Any] | None = None) -> int:
            return self._counter.count_messages(provider, model, part, with_tools).tokens

        # The counter's framing is additive per message, so one count per message lets the
        # cut be chosen by sums; the chosen result is then counted whole to confirm it.
        empty = count(())
        fixed = count((), tools) if tools else empty
        pinned = [i for i, m in enumerate(messages) if _role(m) in _PINNED_ROLES]
        rest = [i for i, m in enumerate(messages) if _role(m) not in _PINNED_ROLES]
        cost = [count((m,)) - empty for m in messages]
        fixed += sum(cost[i] for i in pinned)
        suffix = [0] * (len(rest) + 1)
        for position in range(len(rest) - 1, -1, -1):
            suffix[position] = suffix[position + 1] + cost[rest[position]]
        rest_messages = [messages[i] for i in rest]
        last_user = _last_user(rest_messages)
        for cut in _cuts(rest_messages, last_user):
            kept = rest[cut:]
            estimate = fixed + suffix[cut]
            if last_user is not None and cut > last_user:
                kept = [rest[last_user], *kept]
                estimate += cost[rest[last_user]]
            if estimate > budget:
                continue
            result = [messages[i] for i in sorted(pinned + kept)]
            tokens = count(result, tools)
            if tokens <= budget:
                return Truncated(result, len(messages) - len(result), tokens)
        return None


def _role(message: Any) -> str:
    return str(message.get("role", "")) if isinstance(message, Mapping) else ""


def _last_user(messages: Sequence[Any]) -> int | None:
    for position in range(len(messages) - 1, -1, -1):
        if _role(messages[position]) == "user":
            return position
    return None


def _answered_calls(messages: Sequence[Any]) -> list[int | None]:
    """For each message, the position of the assistant message whose call it answers (None
    for anything that is not a tool result, and for a result whose call is absent)."""
    calls: dict[str, int] = {}
    last_function_call: int | None = None
    answered: list[int | None] = []
    for position, message in enumerate(messages):
        role = _role(message)
        found: int | None = None
        if role == "assistant":
            for call in message.get("tool_calls") or ():
                if isinstance(call, Mapping) and isinstance(call.get("id"), str):
                    calls[call["id"]] = position
            if message.get("function_call"):
                last_function_call = position
        elif role == "tool":
            call_id = message.get("tool_call_id")
            found = calls.get(call_id) if isinstance(call_id, str) else None
        elif role == "function":
            found = last_function_call
        answered.append(found)
    return answered


def _cuts(messages: Sequence[Any], last_user: int | None) -> Iterator[int]:
    """Where the kept suffix of the non-pinned messages may start, oldest first (the first
    cut drops the least): never inside a turn before the last user message, never between a
    call and its results, never at a tool result."""
    count = len(messages)
    answered = _answered_calls(messages)
    # earliest[c]: the earliest call answered by a result at position >= c.
    earliest = [count] * (count + 1)
    for position in range(count - 1, -1, -1):
        call = answered[position]
        earliest[position] = (
            earliest[position + 1] if call is None else min(call, earliest[position + 1])
        )
    for cut in range(1, count + 1):
        role = _role(messages[cut]) if cut < count else ""
        if role in _RESULT_ROLES or earliest[cut] < cut:
            continue
        if last_user is not None and cut <= last_user and role != "user":
            continue
        yield cut


def larger_windows(
    groups: Mapping[str, Sequence[Deployment]], registry: ModelRegistry, group: str
) -> list[str]:
    """Model names whose context window is larger than `group`'s, smallest first. A name's
    window is its smallest deployment's; a name with a model the registry does not know has
    none (and is neither a candidate nor, as `group`, comparable)."""

    def window_of(name: str) -> int | None:
        windows = []
        for deployment in groups.get(name, ()):
            info = registry.get(deployment.provider, deployment.model)
            if info is None:
                return None
            windows.append(info.context_window)
        return min(windows) if windows else None

    own = window_of(group)
    if own is None:
        return []
    larger = [
        (window, name)
        for name in groups
        if name != group and (window := window_of(name)) is not None and window > own
    ]
    return [name for _, name in sorted(larger)]
