"""aiohttp vs httpx as the gateway's pooled async client to a provider.

Both clients talk to the same zero-latency ``bench.upstream`` over keep-alive connections, each
in a fresh process on uvloop (as in the gateway), through the same closed-loop harness as
``bench.loadgen``. Scenarios:

- ``sequential``: one request at a time (latency per call: p50/p99; req/s).
- ``concurrent``: ``--concurrency`` tasks sharing the client (throughput: req/s; p50/p99).
- ``stream``: one streamed request at a time, reading the SSE lines up to ``data: [DONE]``.

With pinning (>= 2 CPUs) the client process has CPU 1 and the upstream CPU 0, so what is
measured is the client's own CPU cost. Rounds alternate the clients; the table shows medians.

Run: ``python -m bench.http_clients [--duration 5] [--concurrency 64] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import httpx
import uvloop

from bench.loadgen import LoadReport, closed_loop
from bench.procs import free_port, pinned, running

SCENARIOS = ("sequential", "concurrent", "stream")
BODY = b'{"model": "bench", "messages": [{"role": "user", "content": "Say hello"}]}'
STREAM_BODY = b'{"model": "bench", "stream": true, "messages": [{"role": "user", "content": "Hi"}]}'
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench-not-a-secret"}
RESULTS_DIR = Path(__file__).resolve().parent / "results"

Send = Callable[[], Awaitable[int]]
SenderFactory = Callable[[str, int, bool], AbstractAsyncContextManager[Send]]


@asynccontextmanager
async def aiohttp_sender(url: str, pool: int, stream: bool) -> AsyncIterator[Send]:
    connector = aiohttp.TCPConnector(limit=pool, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def send() -> int:
            try:
                if stream:
                    async with session.post(url, data=STREAM_BODY, headers=HEADERS) as resp:
                        async for line in resp.content:
                            if line.startswith(b"data: [DONE]"):
                                break
                        return resp.status
                async with session.post(url, data=BODY, headers=HEADERS) as resp:
                    await resp.read()
                    return resp.status
            except (TimeoutError, aiohttp.ClientError):
                return 0

        yield send


def httpx_like_sender(module: ModuleType) -> SenderFactory:
    """A sender for httpx, or for an API-compatible fork such as httpx2."""

    @asynccontextmanager
    async def factory(url: str, pool: int, stream: bool) -> AsyncIterator[Send]:
        limits = module.Limits(max_connections=pool, max_keepalive_connections=pool)
        async with module.AsyncClient(limits=limits, timeout=30.0) as client:

            async def send() -> int:
                try:
                    if stream:
                        req = client.build_request(
                            "POST", url, content=STREAM_BODY, headers=HEADERS
                        )
                        resp = await client.send(req, stream=True)
                        try:
                            async for line in resp.aiter_lines():
                                if line.startswith("data: [DONE]"):
                                    break
                        finally:
                            await resp.aclose()
                        return int(resp.status_code)
                    resp = await client.post(url, content=BODY, headers=HEADERS)
                    return int(resp.status_code)
                except module.HTTPError:
                    return 0

            yield send

    return factory


def senders() -> dict[str, SenderFactory]:
    """aiohttp and httpx, plus httpx2 (the fork the openai SDK uses) when it is installed."""
    out: dict[str, SenderFactory] = {"aiohttp": aiohttp_sender, "httpx": httpx_like_sender(httpx)}
    with suppress(ImportError):
        out["httpx2"] = httpx_like_sender(importlib.import_module("httpx2"))
    return out


async def measure_client(
    client: str, url: str, concurrency: int, duration: float, warmup: float
) -> dict[str, LoadReport]:
    """All scenarios for one client, each with a fresh pool and its own warm-up."""
    factory = senders()[client]
    plan = {"sequential": (1, False), "concurrent": (concurrency, False), "stream": (1, True)}
    out: dict[str, LoadReport] = {}
    for scenario, (tasks, stream) in plan.items():
        async with factory(url, tasks, stream) as send:
            out[scenario] = await closed_loop(send, tasks, duration, warmup)
    return out


def run_worker(args: argparse.Namespace) -> None:
    reports = uvloop.run(
        measure_client(args.worker, args.url, args.concurrency, args.duration, args.warmup)
    )
    print(json.dumps({k: asdict(v) for k, v in reports.items()}), flush=True)


def spawn_worker(client: str, url: str, args: argparse.Namespace, pin: bool) -> dict[str, Any]:
    argv = [sys.executable, "-m", "bench.http_clients", "--worker", client, "--url", url]
    argv += ["--concurrency", str(args.concurrency), "--duration", str(args.duration)]
    argv += ["--warmup", str(args.warmup)]
    budget = 3 * (args.duration + args.warmup) + 60
    proc = subprocess.run(
        pinned(argv, {1} if pin else None),
        capture_output=True,
        text=True,
        timeout=budget,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{client} worker failed: {proc.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


Table = dict[str, dict[str, dict[str, float]]]


def median_table(clients: list[str], rounds: list[dict[str, dict[str, Any]]]) -> Table:
    """client -> scenario -> {rps, p50_us, p99_us, errors}: medians over rounds."""
    table: Table = {}
    for client in clients:
        table[client] = {}
        for scenario in SCENARIOS:
            runs = [r[client][scenario] for r in rounds]
            table[client][scenario] = {
                key: round(statistics.median(run[key] for run in runs), 1)
                for key in ("rps", "p50_us", "p99_us")
            }
            table[client][scenario]["errors"] = sum(run["errors"] for run in runs)
    return table


def render(table: Table, concurrency: int) -> str:
    head = f"{'scenario':<24} {'client':<8} {'req/s':>9} {'p50':>9} {'p99':>9}  errors"
    lines = [head, "-" * len(head)]
    names = {
        "sequential": "sequential (1 at a time)",
        "concurrent": f"concurrent ({concurrency} tasks)",
        "stream": "stream (1 at a time)",
    }
    for scenario in SCENARIOS:
        for client, rows in table.items():
            row = rows[scenario]
            lines.append(
                f"{names[scenario]:<24} {client:<8} {row['rps']:>9,.0f} "
                f"{row['p50_us']:>6.0f} us {row['p99_us']:>6.0f} us  {row['errors']:.0f}"
            )
        base = table["aiohttp"][scenario]["rps"]
        ratios = [
            f"aiohttp/{c} req/s x{base / rows[scenario]['rps']:.2f}"
            for c, rows in table.items()
            if c != "aiohttp" and rows[scenario]["rps"]
        ]
        lines.append(f"{'':<24} {'; '.join(ratios)}")
    return "\n".join(lines)


def versions(clients: list[str]) -> dict[str, str]:
    out = {}
    for name in clients:
        with suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="aiohttp vs httpx against bench.upstream.")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per scenario")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pin", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 120 or not 1 <= args.rounds <= 10 or args.concurrency < 1:
        parser.error("need 0 < --duration <= 120, 1 <= --rounds <= 10, --concurrency >= 1")
    if args.worker:
        run_worker(args)
        return
    clients = list(senders())
    pin = args.pin == "on" or (args.pin == "auto" and (os.cpu_count() or 1) >= 2)
    rounds: list[dict[str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="bench-clients-") as tmp:
        port = free_port()
        argv_up = [sys.executable, "-m", "bench.upstream", "--port", str(port)]
        cpus = {0} if pin else None
        with running("upstream", argv_up, port=port, log_dir=Path(tmp), cpus=cpus) as upstream:
            url = upstream.base_url + "/v1/chat/completions"
            for i in range(args.rounds):
                order = clients if i % 2 == 0 else clients[::-1]
                print(f"round {i + 1}/{args.rounds}: {', '.join(order)} ...", flush=True)
                rounds.append({c: spawn_worker(c, url, args, pin) for c in order})
    table = median_table(clients, rounds)
    print()
    print(render(table, args.concurrency))
    doc: dict[str, Any] = {"settings": vars(args) | {"pinned": pin}}
    doc |= {"versions": versions(clients), "median": table, "rounds": rounds}
    path: Path = args.output or RESULTS_DIR / f"clients-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
