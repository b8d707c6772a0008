"""The most a request can cost, before it is sent: what a budget reserves at admission.

Upper bounds, from the model registry's prices:

- prompt tokens: the gateway's count of the messages and tools (as `/v1/tokens/count`; exact
  for OpenAI's encodings, a deliberately high estimate for other models); for a prompt over
  `COUNT_CHARS` characters, its UTF-8 byte length (a byte-level BPE token is at least one
  byte), so that admission never tokenizes a huge prompt on the event loop;
- priced at the higher of the input and the cache-write price (a cache read is cheaper);
- completion tokens: the request's `max_completion_tokens` / `max_tokens`, else the model's
  `max_output_tokens`, else its context window; at the output price.

None when the model has no price (nothing can be reserved; a caller under a budget is refused
such a model anyway). A router fallback to a dearer model is not foreseen here: the request is
charged what it really cost when it ends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import orjson

from ai_gateway.model_registry import ModelInfo
from ai_gateway.usage.pricing import MILLION, priced
from ai_gateway.usage.tokens import TokenCounter

COUNT_CHARS = 32 * 1024


def _output_bound(info: ModelInfo, body: Mapping[str, Any]) -> int:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if type(value) is int and value > 0:
            return value
    return info.max_output_tokens or info.context_window


def _prompt_bound(counter: TokenCounter, provider: str, model: str, body: Mapping[str, Any]) -> int:
    messages = body.get("messages")
    if messages is None:  # embeddings: the input text(s)
        text = body.get("input")
        texts = [text] if isinstance(text, str) else text if isinstance(text, list) else []
        if all(isinstance(t, str) for t in texts) and sum(map(len, texts)) <= COUNT_CHARS:
            return counter.count_text(provider, model, texts).tokens
        return len(orjson.dumps(text))  # token ids: a token id is at least one byte of JSON
    tools = body.get("tools")
    encoded = orjson.dumps([messages, tools])
    if len(encoded) > COUNT_CHARS or not isinstance(messages, Sequence):
        return len(encoded)
    try:
        return counter.count_messages(
            provider,
            model,
            [m for m in messages if isinstance(m, Mapping)],
            tools if isinstance(tools, Sequence) else None,
        ).tokens
    except ValueError:  # a tokenizer limit: the byte length bounds it
        return len(encoded)


def max_cost(
    counter: TokenCounter,
    info: ModelInfo | None,
    provider: str,
    model: str,
    body: Mapping[str, Any],
) -> Decimal | None:
    """The most `body` can cost on `provider`/`model` (`info`: its registry entry)."""
    if info is None or not priced(info):
        return None
    assert info.input_price is not None
    input_price = max(info.input_price, info.cache_write_price or info.input_price)
    prompt = _prompt_bound(counter, provider, model, body)
    if info.mode == "embedding":
        return prompt * input_price / MILLION
    output = _output_bound(info, body) * (info.output_price or 0)
    return (prompt * input_price + output) / MILLION
