"""Parallel model requests (opt-in): one prompt to several model names at once.

`"models": [...]` with `"fanout": "first"` returns the first successful answer and cancels the
rest (upstream included; streams race to their first token); with `"fanout": "all"` (the
default) it waits for every model and returns one `chat.completion` whose choices are each
model's answer in the order asked, each marked with its `model`, and a failed model's choice
carrying its `error` instead of a message. Usage is the sum. It fails only if every model failed.

Each model's branch gets that model's content rules (on its prompt and its answer, or its stream)
and is recorded as its own request, attributed to the caller; the request as a whole is charged
what every branch cost (losers of a race included: they were called).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from functools import partial
from typing import Any, TypeVar

from ai_gateway.errors import GatewayError
from ai_gateway.pipeline.chat import ChatPipeline
from ai_gateway.pipeline.gate import RequestGate
from ai_gateway.providers.base import ChatRequest, JSONObject
from ai_gateway.request_info import RequestInfo
from ai_gateway.routing.race import first_success

T = TypeVar("T")


def _for_model(request: ChatRequest, model: str) -> ChatRequest:
    body = {**request.body, "model": model}
    parsed = request.parsed.model_copy(update={"model": model, "models": None, "fanout": None})
    return ChatRequest(body=body, parsed=parsed)


def _branch_info(info: RequestInfo, index: int) -> RequestInfo:
    """Each model of a fan-out is its own request in the records: `<request id>.<n>`."""
    return RequestInfo(
        request_id=f"{info.request_id}.{index}",
        started=info.started,
        principal=info.principal,
        client_ip=info.client_ip,
        client_request_id=info.client_request_id,
        priced_only=info.priced_only,
        metered=info.metered,
        reach=info.reach,  # a branch's fallbacks are admitted into the request's ticket
    )


def _charge(info: RequestInfo, branches: Sequence[RequestInfo]) -> None:
    """The request used what all its branches used (for its limits and budget)."""
    costs = [b.cost_usd for b in branches if b.cost_usd is not None]
    info.cost_usd = sum(costs[1:], costs[0]) if costs else None
    info.total_tokens = sum(b.total_tokens for b in branches)


async def _first(
    calls: Sequence[Callable[[], Coroutine[Any, Any, T]]],
    discard: Callable[[T], Awaitable[None]] | None,
) -> tuple[int, T]:
    return await first_success([asyncio.create_task(call()) for call in calls], discard)


class Fanout:
    def __init__(self, pipeline: ChatPipeline, gate: RequestGate) -> None:
        self._pipeline = pipeline
        self._gate = gate

    async def _complete(self, request: ChatRequest, model: str, info: RequestInfo) -> JSONObject:
        gate = self._gate
        chat = await gate.guard_input(_for_model(request, model), model, info)
        return await gate.guard_output(await self._pipeline.complete(chat, info), model, info)

    async def _open(
        self, request: ChatRequest, model: str, info: RequestInfo
    ) -> AsyncIterator[bytes]:
        chat = await self._gate.guard_input(_for_model(request, model), model, info)
        return await self._pipeline.open_stream(chat, info, self._gate.chunk_guard(model, info))

    async def first(self, request: ChatRequest, info: RequestInfo) -> JSONObject:
        models = request.parsed.models or []
        branches = [_branch_info(info, i) for i in range(len(models))]
        calls = [
            partial(self._complete, request, m, b) for m, b in zip(models, branches, strict=True)
        ]
        try:
            index, result = await _first(calls, None)
        finally:
            _charge(info, branches)
        _adopt(info, branches[index])
        return result

    async def first_stream(self, request: ChatRequest, info: RequestInfo) -> AsyncIterator[bytes]:
        models = request.parsed.models or []
        branches = [_branch_info(info, i) for i in range(len(models))]
        calls = [partial(self._open, request, m, b) for m, b in zip(models, branches, strict=True)]

        async def close(stream: AsyncIterator[bytes]) -> None:
            await stream.aclose()  # type: ignore[attr-defined]

        try:
            index, stream = await _first(calls, close)
        except BaseException:
            _charge(info, branches)
            raise
        _adopt(info, branches[index])

        async def charged() -> AsyncGenerator[bytes, None]:
            try:
                yield b""  # the priming step, as in ChatPipeline.open_stream
                async for part in stream:
                    yield part
            finally:
                await close(stream)
                _charge(info, branches)  # the winner's usage is known when its stream ends

        # Started, so that closing it unread (a client gone before the body started) still
        # closes the winner's stream and charges the request for every branch.
        relay = charged()
        await anext(relay)
        return relay

    async def all(self, request: ChatRequest, info: RequestInfo) -> JSONObject:
        models = request.parsed.models or []
        branches = [_branch_info(info, i) for i in range(len(models))]
        results = await asyncio.gather(
            *(self._complete(request, m, b) for m, b in zip(models, branches, strict=True)),
            return_exceptions=True,
        )
        _charge(info, branches)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, GatewayError):
                raise result
        if all(isinstance(r, GatewayError) for r in results):
            first = results[0]
            assert isinstance(first, GatewayError)
            raise first
        choices: list[JSONObject] = []
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        for model, result in zip(models, results, strict=True):
            if isinstance(result, GatewayError):
                choices.append(
                    {
                        "index": len(choices),
                        "model": model,
                        "message": None,
                        "finish_reason": None,
                        "error": result.to_dict()["error"],
                    }
                )
                continue
            assert isinstance(result, dict)
            for choice in result.get("choices") or ():
                choices.append({**choice, "index": len(choices), "model": model})
            for key in usage:
                value = (result.get("usage") or {}).get(key)
                if isinstance(value, int):
                    usage[key] += value
        return {
            "id": f"chatcmpl-fanout-{info.request_id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": ",".join(models),
            "choices": choices,
            "usage": usage,
        }


def _adopt(info: RequestInfo, branch: RequestInfo) -> None:
    info.model, info.provider = branch.model, branch.provider
    info.deployment, info.upstream_label, info.trace = (
        branch.deployment,
        branch.upstream_label,
        branch.trace,
    )
