"""What the stages pass along: one `Exchange` per request (and one per branch of a fan-out),
and what a chain returns, an `Outcome`.

An outcome is a JSON answer (a dict) or a stream of chunk objects (`Chunks`, never SSE bytes).
A stream is started by whoever takes it from the chain (the handler's renderer, a fan-out
racing its branches) by pulling its first chunk: from then on every stage's wrapper is running,
so closing the stream runs each one's clean-up, however and whenever it ends. An error raised
before the first chunk came out reaches the client as an HTTP error; one raised after it, as an
error event inside the 200 stream.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any

from ai_gateway.cache.controls import NO_CONTROL, CacheControl
from ai_gateway.cache.entry import Entry
from ai_gateway.errors import GatewayError
from ai_gateway.providers.base import ChatRequest, EmbeddingsCall, JSONObject
from ai_gateway.providers.native import NativeRequest
from ai_gateway.rag.index import IndexHit
from ai_gateway.request_info import RequestInfo
from ai_gateway.schemas.chat import GATEWAY_FIELDS, ChatCompletionRequest
from ai_gateway.schemas.embeddings import EmbeddingsRequest
from ai_gateway.schemas.validation import parse_body
from ai_gateway.security.config import RequestLimits
from ai_gateway.security.request_limits import check_chat, check_embeddings

Chunks = AsyncGenerator[JSONObject, None]
Outcome = JSONObject | Chunks


@dataclass(frozen=True, slots=True)
class Retrieval:
    """What the retrieval stage searched for and put in the prompt (pipeline/retrieve.py), for
    a renderer that shows it (the Responses API's `file_search_call` item)."""

    query: str
    hits: tuple[IndexHit, ...]


class Kind(Enum):
    """The endpoint kind; its value is the usage record's `route`."""

    CHAT = "chat"
    EMBEDDINGS = "embeddings"


@dataclass(slots=True)
class Exchange:
    """One request as the stages see it. Stages may replace `request` (a redacted prompt), add
    response `headers`, and fill in what the answer used (`usage`, ...); the request's other
    facts (caller, route taken, cost) are in `info`."""

    kind: Kind
    request: ChatRequest | EmbeddingsCall
    info: RequestInfo
    model: str  # the model name this exchange calls
    models: tuple[str, ...]  # every name it calls: `model`, or each branch's of a fan-out
    stream: bool = False
    include_usage: bool = False  # the client asked for the usage chunk of a stream
    headers: dict[str, str] = field(default_factory=dict)  # for the response
    branches: list[Exchange] | None = None  # a fan-out's, each recorded as its own request
    # What the answer used, set by the provider call (a stream: when it ends).
    usage: object = None
    usage_estimated: bool = False  # `usage` is the gateway's count of a cut stream
    ttft_s: float | None = None
    # The response cache (pipeline/cache.py).
    cache_control: CacheControl = NO_CONTROL  # the client's Cache-Control header
    cache_status: str = "off"  # off, miss, hit, semantic-hit, bypass, refresh
    cache_entry: Entry | None = None  # the entry a hit answers from
    cache_lock: str | None = None  # a shared coalescing lock this request holds
    saved_tokens: int = 0  # a hit: the tokens the cached answer cost when generated
    saved_cost_usd: Decimal | None = None
    # Why the gateway itself stopped this request (a chain's time bound), for its record: not a
    # client that left (499).
    stopped: GatewayError | None = None
    # The prompt template version the request was rendered from (pipeline/prompt.py).
    prompt: str | None = None  # "<id>@<version>"
    retrieval: Retrieval | None = None  # what the retrieval stage searched and used
    # The request in a provider's own wire format (the Messages API), beside the OpenAI-shaped
    # `request` the stages see; each attempt's adapter gets both (providers/native.py).
    native: NativeRequest | None = None

    @property
    def chat(self) -> ChatRequest:
        request = self.request
        assert isinstance(request, ChatRequest)
        return request

    @property
    def fanout(self) -> str | None:
        """`first` or `all` for a request naming several models, else None."""
        request = self.request
        if isinstance(request, ChatRequest) and request.parsed.models:
            return request.parsed.fanout or "all"
        return None

    def branch(self, index: int, model: str) -> Exchange:
        """The exchange of a fan-out's branch `index`, calling `model`: recorded as the request
        `<request id>.<index>`, admitted in the request's ticket."""
        chat = self.chat
        body = {**chat.body, "model": model}
        parsed = chat.parsed.model_copy(update={"model": model, "models": None, "fanout": None})
        info = self.info
        return Exchange(
            kind=self.kind,
            request=ChatRequest(body=body, parsed=parsed),
            info=RequestInfo(
                request_id=f"{info.request_id}.{index}",
                started=info.started,
                principal=info.principal,
                client_ip=info.client_ip,
                client_request_id=info.client_request_id,
                priced_only=info.priced_only,
                metered=info.metered,
                reach=info.reach,  # a branch's fallbacks are admitted into the request's ticket
                prompt_id=info.prompt_id,
                prompt_version=info.prompt_version,
            ),
            model=model,
            models=(model,),
            stream=self.stream,
            include_usage=self.include_usage,
            cache_control=self.cache_control,
            prompt=self.prompt,
        )


def chat_exchange(
    body: Any, info: RequestInfo, limits: RequestLimits, cache_control: str | None = None
) -> Exchange:
    """A chat request's exchange from its JSON: the request limits on the raw JSON (before the
    schema, bounding its work), then the schema (400 naming the field). The gateway's own
    fields are not sent upstream."""
    check_chat(body, limits)
    parsed = parse_body(ChatCompletionRequest, body)
    if any(name in body for name in GATEWAY_FIELDS):
        body = {k: v for k, v in body.items() if k not in GATEWAY_FIELDS}
    options = parsed.stream_options
    return Exchange(
        kind=Kind.CHAT,
        request=ChatRequest(body=body, parsed=parsed),
        info=info,
        # No model yet: a prompt template names it (pipeline/prompt.py).
        model=parsed.model or "",
        models=tuple(parsed.models) if parsed.models else (parsed.model or "",),
        stream=bool(parsed.stream),
        include_usage=bool(options and options.include_usage),
        cache_control=CacheControl.parse(cache_control),
    )


def embeddings_exchange(body: Any, info: RequestInfo, limits: RequestLimits) -> Exchange:
    check_embeddings(body, limits)
    parsed = parse_body(EmbeddingsRequest, body)
    return Exchange(
        kind=Kind.EMBEDDINGS,
        request=EmbeddingsCall(body=body, parsed=parsed),
        info=info,
        model=parsed.model,
        models=(parsed.model,),
    )
