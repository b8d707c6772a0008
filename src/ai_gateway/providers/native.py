"""A request in a provider's own wire format, carried beside its OpenAI-shaped view.

A client of a native API (the Anthropic Messages API, `api/messages.py`) sends a body that the
OpenAI shape cannot hold in full (thinking blocks with their signatures, `cache_control`,
document blocks, `top_k`, fields newer than this gateway). The gateway's stages work on the
OpenAI-shaped view derived from it; the native body rides along on the exchange, and:

- the adapter of the same wire (`provider`) sends the native body, not a translation of the
  view (`providers/anthropic_native.py`): nothing is lost. Where a stage changed the view (a
  redaction, context blocks, a truncation) that adapter puts the change into the native body;
- every other adapter translates the view as usual, and `refusal` says first which part of
  the native body that provider cannot take (a 400 naming the field), before any upstream call.

The answer comes back OpenAI-shaped as always, with the upstream's own message (JSON) or events
(each chunk) under `NATIVE_KEY`, so that a renderer of the same wire can relay them as they came
(`messages/`). Only exchanges with a native body ever carry that key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ai_gateway.errors import InvalidRequestError

JSONObject = dict[str, Any]

# The key of a chat.completion (the upstream's message) or of a chunk (the upstream's events that
# made it) holding what the upstream sent in its own wire format.
NATIVE_KEY = "_native"


@dataclass(frozen=True, slots=True)
class Unsupported:
    """A part of the native body that the providers in `providers` cannot take (`param` names
    it, `why` says what it is)."""

    param: str
    why: str
    providers: frozenset[str]


@dataclass(frozen=True, slots=True)
class NativeRequest:
    """`body`: the client's request as sent (`model` is the client's name for it). `view`: the
    OpenAI-shaped body derived from it, as the chain began with it (a stage that changes the
    request replaces the exchange's body: `is view` says it did not). `headers`: the client's
    headers the native upstream honours (`anthropic-version`, `anthropic-beta`)."""

    provider: str
    body: JSONObject
    view: JSONObject
    headers: Mapping[str, str] = field(default_factory=dict)
    unsupported: tuple[Unsupported, ...] = ()

    def refusal(self, provider: str) -> InvalidRequestError | None:
        """The 400 for a deployment of `provider`, when the request holds something it cannot
        take; None when it can take it all (its own wire always can)."""
        if provider == self.provider:
            return None
        for item in self.unsupported:
            if provider in item.providers:
                return InvalidRequestError(
                    f"{item.param}: {item.why}, which the model's provider ({provider}) cannot "
                    "take; send this request to an Anthropic model, or leave it out.",
                    param=item.param,
                    code="unsupported_for_provider",
                )
        return None
