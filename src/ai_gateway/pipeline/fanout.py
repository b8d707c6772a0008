"""The fan-out stage: one prompt to several model names at once (opt-in, `"models": [...]`).

It runs the rest of the chain once per model, each branch recorded as its own request
(`<request id>.<n>`, attributed to the caller) and with that model's content rules. With
`"fanout": "first"` the first successful answer is returned and the rest cancelled (upstream
included; streams race to their first chunk); with `"fanout": "all"` (the default) it waits for
every model and returns one `chat.completion` whose choices are each model's answer in the order
asked, each marked with its `model`, and a failed model's choice carrying its `error` instead of
a message. Usage is the sum. It fails only if every model failed. The request as a whole is
charged what every branch cost (losers of a race included: they were called).

Any other request passes through.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from ai_gateway.errors import GatewayError
from ai_gateway.pipeline.chain import Next, Stage
from ai_gateway.pipeline.exchange import Chunks, Exchange, Outcome
from ai_gateway.providers.base import JSONObject
from ai_gateway.request_info import RequestInfo
from ai_gateway.routing.race import first_success

Opened = tuple[Chunks, JSONObject | None]  # a branch's stream and its first chunk


class Fanout:
    def __init__(self, record: Stage) -> None:
        """`record`: the recording stage, run around each branch."""
        self._record = record

    def skips(self, exchange: Exchange) -> bool:
        return exchange.fanout is None

    async def __call__(self, exchange: Exchange, next: Next) -> Outcome:
        mode = exchange.fanout
        if mode is None:
            return await next(exchange)
        exchange.headers["x-gateway-fanout"] = mode
        branches = [exchange.branch(i, model) for i, model in enumerate(exchange.models)]
        exchange.branches = branches
        if mode == "all":
            return await self._all(exchange, branches, next)
        if exchange.stream:
            return await self._first_stream(exchange, branches, next)
        return await self._first(exchange, branches, next)

    async def _run(self, branch: Exchange, next: Next) -> Outcome:
        return await self._record(branch, next)

    async def _first(self, exchange: Exchange, branches: list[Exchange], next: Next) -> Outcome:
        tasks = [asyncio.create_task(self._run(b, next)) for b in branches]
        try:
            index, result = await first_success(tasks)
        finally:
            _charge(exchange.info, branches)
        _adopt(exchange.info, branches[index].info)
        return result

    async def _first_stream(
        self, exchange: Exchange, branches: list[Exchange], next: Next
    ) -> Chunks:
        async def open_branch(branch: Exchange) -> Opened:
            chunks = await self._run(branch, next)
            assert not isinstance(chunks, dict)
            return chunks, await anext(chunks, None)  # started: closing it cleans it up

        async def close(opened: Opened) -> None:
            await opened[0].aclose()

        tasks = [asyncio.create_task(open_branch(b)) for b in branches]
        try:
            index, (chunks, first) = await first_success(tasks, close)
        except BaseException:
            _charge(exchange.info, branches)
            raise
        _adopt(exchange.info, branches[index].info)
        return _charged(chunks, first, exchange.info, branches)

    async def _all(self, exchange: Exchange, branches: list[Exchange], next: Next) -> JSONObject:
        results = await asyncio.gather(
            *(self._run(b, next) for b in branches), return_exceptions=True
        )
        _charge(exchange.info, branches)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, GatewayError):
                raise result
        if all(isinstance(r, GatewayError) for r in results):
            first = results[0]
            assert isinstance(first, GatewayError)
            raise first
        choices: list[JSONObject] = []
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        for branch, result in zip(branches, results, strict=True):
            if isinstance(result, GatewayError):
                choices.append(
                    {
                        "index": len(choices),
                        "model": branch.model,
                        "message": None,
                        "finish_reason": None,
                        "error": result.to_dict()["error"],
                    }
                )
                continue
            assert isinstance(result, dict)
            for choice in result.get("choices") or ():
                choices.append({**choice, "index": len(choices), "model": branch.model})
            for key in usage:
                value = (result.get("usage") or {}).get(key)
                if isinstance(value, int):
                    usage[key] += value
        return {
            "id": f"chatcmpl-fanout-{exchange.info.request_id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": ",".join(exchange.models),
            "choices": choices,
            "usage": usage,
        }


async def _charged(
    chunks: Chunks, first: JSONObject | None, info: RequestInfo, branches: Sequence[Exchange]
) -> Chunks:
    """The winner's stream; the request is charged for every branch when it ends (the
    winner's usage is known then)."""
    try:
        if first is not None:
            yield first
            async for chunk in chunks:
                yield chunk
    finally:
        await chunks.aclose()
        _charge(info, branches)


def _charge(info: RequestInfo, branches: Sequence[Exchange]) -> None:
    """The request used what all its branches used (for its limits and budget)."""
    costs = [b.info.cost_usd for b in branches if b.info.cost_usd is not None]
    info.cost_usd = sum(costs[1:], costs[0]) if costs else None
    info.total_tokens = sum(b.info.total_tokens for b in branches)


def _adopt(info: RequestInfo, branch: RequestInfo) -> None:
    """The winner's labels and route are the request's (metrics, response headers)."""
    info.model, info.provider = branch.model, branch.provider
    info.deployment, info.upstream_label, info.trace = (
        branch.deployment,
        branch.upstream_label,
        branch.trace,
    )
