"""A closed-loop Python load generator (used only when ``wrk`` is not installed).

``--connections`` workers share one aiohttp session limited to that many keep-alive connections;
each sends a request, waits for the whole response, and sends the next. After ``--warmup``
seconds (not counted) it measures for ``--duration`` seconds and prints one JSON line:
requests, req/s, p50/p90/p99/mean/max latency in microseconds, errors.

Note: one Python process can issue roughly 10-20k req/s, so against a very fast server (the
direct upstream) this measures the generator as much as the server; wrk does not have that limit.

Run: ``python -m bench.loadgen --url http://127.0.0.1:9000/v1/chat/completions -c 64 -d 10``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field

import aiohttp
import uvloop

DEFAULT_BODY = '{"model": "bench", "messages": [{"role": "user", "content": "Say hello"}]}'


@dataclass
class Window:
    """What the workers record; only requests that start inside the window count."""

    start: float
    end: float
    latencies_ns: list[int] = field(default_factory=list)
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadReport:
    requests: int
    duration_s: float
    rps: float
    p50_us: float
    p90_us: float
    p99_us: float
    mean_us: float
    max_us: float
    errors: int
    statuses: dict[int, int]


def percentile(sorted_values: list[int], pct: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty list)."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, round(pct / 100 * len(sorted_values)) - 1))
    return float(sorted_values[rank])


Send = Callable[[], Awaitable[int]]
"""One request, response read in full; returns the HTTP status (0 for a transport error)."""


async def _worker(send: Send, window: Window) -> None:
    clock = time.perf_counter
    while True:
        started = clock()
        if started >= window.end:
            return
        t0 = time.perf_counter_ns()
        status = await send()
        elapsed = time.perf_counter_ns() - t0
        if window.start <= started < window.end:
            window.statuses[status] = window.statuses.get(status, 0) + 1
            if 200 <= status < 300:
                window.latencies_ns.append(elapsed)
            else:
                window.errors += 1
        if status == 0:
            await asyncio.sleep(0.01)  # do not spin on a refused connection


async def closed_loop(send: Send, concurrency: int, duration: float, warmup: float) -> LoadReport:
    """Run ``concurrency`` workers calling ``send`` back to back; measure after the warm-up."""
    now = time.perf_counter()
    window = Window(start=now + warmup, end=now + warmup + duration)
    await asyncio.gather(*(_worker(send, window) for _ in range(concurrency)))
    latencies = sorted(window.latencies_ns)
    mean_ns = sum(latencies) / len(latencies) if latencies else 0.0
    return LoadReport(
        requests=len(latencies) + window.errors,
        duration_s=duration,
        rps=len(latencies) / duration,
        p50_us=percentile(latencies, 50) / 1000,
        p90_us=percentile(latencies, 90) / 1000,
        p99_us=percentile(latencies, 99) / 1000,
        mean_us=mean_ns / 1000,
        max_us=(latencies[-1] / 1000) if latencies else 0.0,
        errors=window.errors,
        statuses=window.statuses,
    )


async def run_load(
    url: str, connections: int, duration: float, warmup: float, body: bytes
) -> LoadReport:
    """Drive ``url`` with ``connections`` closed-loop aiohttp workers."""
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=30)
    headers = {"Content-Type": "application/json"}
    if os.environ.get("BENCH_AUTH"):
        headers["Authorization"] = f"Bearer {os.environ['BENCH_AUTH']}"
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def send() -> int:
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    return response.status
            except (TimeoutError, aiohttp.ClientError):
                return 0

        return await closed_loop(send, connections, duration, warmup)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Closed-loop HTTP POST load generator.")
    parser.add_argument("--url", required=True)
    parser.add_argument("-c", "--connections", type=int, default=64)
    parser.add_argument("-d", "--duration", type=float, default=10.0)
    parser.add_argument("-w", "--warmup", type=float, default=2.0)
    parser.add_argument("--body", default=DEFAULT_BODY)
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.duration > 600 or args.connections < 1:
        parser.error("--duration must be in (0, 600] and --connections >= 1")
    report = uvloop.run(
        run_load(args.url, args.connections, args.duration, args.warmup, args.body.encode())
    )
    print(json.dumps(asdict(report)), flush=True)


if __name__ == "__main__":
    main()
