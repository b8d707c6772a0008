"""The hooks stage (docs/hooks.md): operator functions run at named points of a request, after
the content rules and before the response cache.

- `pre_request`: each hook in turn sees the request; it may replace it (the new body must keep
  the model and `stream` and pass the request schema), refuse it (its `Reject` becomes an
  OpenAI-style error) or answer it (`Respond`: a streamed request gets the answer as chunks).
- `post_response`: each hook sees a JSON answer and may replace or refuse it.
- `on_chunk`: each hook sees each chunk of a stream and may replace it, drop it, or end the
  stream with an error.

`on_record` hooks run off the hot path, on the finished usage record (hooks/records.py). A
failing hook follows its `fail` policy (hooks/runner.py). With no hooks configured for the point
and model the stage passes the request through at the cost of a call; with no hooks configured
at all the chain skips it (`skips`).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ai_gateway.cache.entry import chunks_of, replay
from ai_gateway.errors import GatewayError
from ai_gateway.hooks.api import Caller, Continue, Drop, HookContext, Respond
from ai_gateway.hooks.config import HookPoint
from ai_gateway.hooks.functions import MalformedResult
from ai_gateway.hooks.runner import Hook, HookSet
from ai_gateway.pipeline.chain import Next
from ai_gateway.pipeline.exchange import Chunks, Exchange, Kind, Outcome
from ai_gateway.providers.base import ChatRequest, EmbeddingsCall, JSONObject
from ai_gateway.schemas.chat import ChatCompletionRequest
from ai_gateway.schemas.embeddings import EmbeddingsRequest
from ai_gateway.schemas.validation import parse_body

ANONYMOUS = Caller()


def caller_of(exchange: Exchange) -> Caller:
    principal = exchange.info.principal
    if principal is None:
        return ANONYMOUS
    return Caller(principal.kind, principal.user, principal.team, principal.key_id)


def context(
    exchange: Exchange, hook: Hook, point: HookPoint, body: JSONObject, caller: Caller
) -> HookContext:
    return HookContext(
        hook=hook.name,
        point=point,
        request_id=exchange.info.request_id,
        endpoint=exchange.kind.value,
        model=exchange.model,
        stream=exchange.stream,
        caller=caller,
        body=body,
        request=exchange.request.body if point != "pre_request" else None,
    )


def replace_request(exchange: Exchange, body: dict[str, Any]) -> None:
    """`body` in place of the exchange's request: MalformedResult if it changes the model or
    `stream`, GatewayError if it does not pass the schema."""
    old = exchange.request.body
    if body.get("model") != old.get("model") or bool(body.get("stream")) != bool(old.get("stream")):
        raise MalformedResult("a new request must keep the model and `stream`")
    if exchange.kind is Kind.CHAT:
        exchange.request = ChatRequest(body=body, parsed=parse_body(ChatCompletionRequest, body))
    else:
        exchange.request = EmbeddingsCall(body=body, parsed=parse_body(EmbeddingsRequest, body))


class Hooks:
    def __init__(self, hooks: HookSet) -> None:
        self._hooks = hooks
        self._on = bool(hooks)

    def skips(self, exchange: Exchange) -> bool:
        return not self._on

    async def __call__(self, exchange: Exchange, next: Next) -> Outcome:
        if not self._on:
            return await next(exchange)
        hooks, model = self._hooks, exchange.model
        caller = caller_of(exchange)
        pre = hooks.at("pre_request", model)
        if pre:
            answer = await self._pre_request(exchange, pre, caller)
            if answer is not None:
                return replay(chunks_of(answer)) if exchange.stream else answer
        outcome = await next(exchange)
        if isinstance(outcome, dict):
            post = hooks.at("post_response", model)
            return await self._post_response(exchange, post, outcome, caller)
        on_chunk = hooks.at("on_chunk", model)
        return _each_chunk(exchange, on_chunk, outcome, caller) if on_chunk else outcome

    async def _pre_request(
        self, exchange: Exchange, hooks: tuple[Hook, ...], caller: Caller
    ) -> JSONObject | None:
        """Run the pre_request hooks; the answer of one that responds."""
        for hook in hooks:
            ctx = context(exchange, hook, "pre_request", exchange.request.body, caller)
            result = await hook(ctx)
            if isinstance(result, Respond):
                if not isinstance(result.answer.get("choices"), list):
                    hook.failed(MalformedResult("Respond: the answer has no `choices`"), ctx)
                    continue
                return result.answer
            if isinstance(result, Continue) and result.body is not None:
                try:
                    replace_request(exchange, result.body)
                except (GatewayError, MalformedResult, ValidationError) as exc:
                    hook.failed(exc, ctx)
        return None

    async def _post_response(
        self, exchange: Exchange, hooks: tuple[Hook, ...], answer: JSONObject, caller: Caller
    ) -> JSONObject:
        for hook in hooks:
            result = await hook(context(exchange, hook, "post_response", answer, caller))
            if isinstance(result, Continue) and result.body is not None:
                answer = result.body
        return answer


async def _each_chunk(
    exchange: Exchange, hooks: tuple[Hook, ...], chunks: Chunks, caller: Caller
) -> Chunks:
    """The stream with each chunk given to the on_chunk hooks in turn."""
    try:
        async for chunk in chunks:
            current: JSONObject | None = chunk
            for hook in hooks:
                assert current is not None
                result = await hook(context(exchange, hook, "on_chunk", current, caller))
                if isinstance(result, Drop):
                    current = None
                    break
                if isinstance(result, Continue) and result.body is not None:
                    current = result.body
            if current is not None:
                yield current
    finally:
        await chunks.aclose()
