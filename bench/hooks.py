"""What a configured no-op hook costs per request (the issue's target: at most 10 µs for a
Python hook), measured in process on the hooks stage itself: the same chat exchange through
`Hooks -> answer` with no hooks, and with one no-op `pre_request` hook of each kind (async,
`inline: true` sync, sync in a worker thread). Configurations are run interleaved, round after
round; the median µs per request of each and its difference to `none` are printed.

    python -m bench.hooks --rounds 15 --requests 20000

The no-op functions below are also what `python -m bench.cpu --hooks NAME` configures for an
end-to-end run (`bench.hooks:noop` on pre_request and post_response).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from ai_gateway.hooks.api import HookContext
from ai_gateway.hooks.config import HookConfig
from ai_gateway.hooks.functions import HttpClient, build_function
from ai_gateway.hooks.runner import Hook, HookMetrics, HookSet
from ai_gateway.observability.metrics import Metrics
from ai_gateway.pipeline.chain import Chain, Next
from ai_gateway.pipeline.exchange import Exchange, Outcome, chat_exchange
from ai_gateway.pipeline.hooks import Hooks
from ai_gateway.request_info import RequestInfo
from ai_gateway.security.config import RequestLimits

ANSWER: dict[str, Any] = {"object": "chat.completion", "choices": []}


async def noop(ctx: HookContext) -> None:
    return None


def noop_sync(ctx: HookContext) -> None:
    return None


async def answer(exchange: Exchange, next: Next) -> Outcome:
    return ANSWER


def chain(metrics: HookMetrics, **hook: Any) -> Chain:
    hooks = []
    if hook:
        config = HookConfig.model_validate({"name": "noop", "point": "pre_request", **hook})
        hooks.append(Hook(config, build_function(config, HttpClient()), metrics))
    return Chain([Hooks(HookSet(hooks)), answer])


async def per_request_us(run: Chain, requests: int) -> float:
    body = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
    exchange = chat_exchange(body, RequestInfo(request_id="bench"), RequestLimits())
    started = time.perf_counter()
    for _ in range(requests):
        await run(exchange)
    return (time.perf_counter() - started) / requests * 1e6


async def main_async(args: argparse.Namespace) -> None:
    metrics = HookMetrics(Metrics())
    chains = {
        "none": chain(metrics),
        "async": chain(metrics, python="bench.hooks:noop"),
        "inline-sync": chain(metrics, python="bench.hooks:noop_sync", inline=True),
    }
    if args.thread:
        chains["thread-sync"] = chain(metrics, python="bench.hooks:noop_sync")
    results: dict[str, list[float]] = {name: [] for name in chains}
    for run in chains.values():  # warm-up
        await per_request_us(run, min(args.requests, 2000))
    for i in range(args.rounds):
        order = list(chains.items()) if i % 2 == 0 else list(chains.items())[::-1]
        for name, run in order:
            requests = args.requests if name != "thread-sync" else max(1, args.requests // 20)
            results[name].append(await per_request_us(run, requests))
    base = statistics.median(results["none"])
    print(f"µs per request through the hooks stage (median of {args.rounds} rounds):")
    for name, values in results.items():
        median = statistics.median(values)
        extra = "" if name == "none" else f"   (+{median - base:.2f} µs for the hook)"
        print(f"  {name:<12} {median:7.2f}{extra}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--thread", action="store_true", help="also a sync hook in a thread")
    asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
