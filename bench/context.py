"""What context building adds to a request's latency (issue: "about the slowest source's time,
never more than its budget").

The Memory, Project and Learning service emulators run in this process, each answering after a
set delay; the zero-latency upstream (bench/upstream.py) and a gateway with `integrations`
enabled run as processes. One request at a time (latency, not throughput): a plain chat, then the
same chat with `context` asking all three sources, interleaved; the medians are compared.

    python -m bench.context                       # sources at 20, 40 and 60 ms; budget 300 ms
    python -m bench.context --slow 1.0 --breaker-failures 1000   # project 1 s: cut at the budget
    python -m bench.context --slow 1.0            # ... until its breaker opens: then skipped

Prints the median and p90 latency of each kind and the added median, next to the slowest
source's delay and the budget.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from ai_gateway.emulator.services import ServiceFaults, ServiceSettings, start
from bench.procs import free_port, running
from bench.run import GATEWAY_CONFIG

QUESTION = "How do I cancel python asyncio tasks in the gateway circuit breaker?"


def config_text(upstream_port: int, urls: dict[str, str], budget_s: float, failures: int) -> str:
    services = "\n".join(f'  {name}: {{url: "{url}", timeout_s: 5}}' for name, url in urls.items())
    return GATEWAY_CONFIG.format(port=upstream_port) + (
        f"integrations:\n  enabled: true\n  budget_s: {budget_s}\n{services}\n"
        f"  breaker: {{failures: {failures}}}\n"
    )


async def measure(
    url: str, requests: int, statuses: Counter[str]
) -> tuple[list[float], list[float]]:
    plain = {"model": "bench", "user": "u-bob", "messages": [{"role": "user", "content": QUESTION}]}
    context = {**plain, "context": {"memory": True, "learning": True, "project_id": "p-gateway"}}
    timings: tuple[list[float], list[float]] = ([], [])
    async with httpx.AsyncClient(timeout=30) as client:
        for i in range(requests + 5):
            for body, into in ((plain, timings[0]), (context, timings[1])):
                started = time.perf_counter()
                resp = await client.post(url, json=body)
                took = time.perf_counter() - started
                resp.raise_for_status()
                if i >= 5:  # warm-up: connections opened, code paths run once
                    into.append(took)
                    if "x-gateway-context" in resp.headers:
                        statuses[resp.headers["x-gateway-context"]] += 1
    return timings


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


async def main_async(args: argparse.Namespace) -> None:
    delays = {"memory": 0.02, "learning": 0.04, "project": args.slow}
    runners = []
    urls: dict[str, str] = {}
    statuses: Counter[str] = Counter()
    for name, delay in delays.items():
        settings = ServiceSettings(faults=ServiceFaults(latency_s=delay))
        runner, port = await start(name, settings)  # type: ignore[arg-type]
        runners.append(runner)
        urls[name] = f"http://127.0.0.1:{port}"
    try:
        with tempfile.TemporaryDirectory(prefix="bench-context-") as tmp:
            logs = Path(tmp)
            up_port, gw_port = free_port(), free_port()
            config = logs / "gateway.yaml"
            config.write_text(config_text(up_port, urls, args.budget, args.breaker_failures))
            upstream = [sys.executable, "-m", "bench.upstream", "--port", str(up_port)]
            gateway = [sys.executable, "-m", "ai_gateway.cli", "serve", "--config", str(config)]
            gateway += ["--host", "127.0.0.1", "--port", str(gw_port)]
            env = {"AI_GATEWAY_DATA_DIR": str(logs / "data")}
            with (
                running("upstream", upstream, port=up_port, log_dir=logs),
                running("gateway", gateway, port=gw_port, log_dir=logs, env=env),
            ):
                url = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
                plain, context = await measure(url, args.requests, statuses)
    finally:
        for runner in runners:
            await runner.cleanup()
    slowest = max(delays.values())
    added = statistics.median(context) - statistics.median(plain)
    print(f"sources: {', '.join(f'{k} {v * 1000:.0f} ms' for k, v in delays.items())}")
    print(f"budget: {args.budget * 1000:.0f} ms; slowest source: {slowest * 1000:.0f} ms")
    for name, values in (("plain", plain), ("context", context)):
        print(
            f"  {name:8s} median {statistics.median(values) * 1000:7.1f} ms"
            f"   p90 {p90(values) * 1000:7.1f} ms   ({len(values)} requests)"
        )
    print(f"  added median: {added * 1000:.1f} ms; context max {max(context) * 1000:.1f} ms")
    for header, count in statuses.most_common():
        print(f"  x-gateway-context: {header}  ({count} requests)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=40, help="of each kind")
    parser.add_argument("--budget", type=float, default=0.3, help="integrations.budget_s")
    parser.add_argument("--slow", type=float, default=0.06, help="the project source's delay, s")
    parser.add_argument(
        "--breaker-failures",
        type=int,
        default=5,
        help="integrations.breaker.failures (high: a slow source is never skipped, so every "
        "request shows the budget's cut)",
    )
    asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
