"""WebSocket streaming vs. SSE through a real gateway (issue: "WebSocket streaming delivers chunks
at least as fast as SSE").

Starts the provider emulator (`ai-gateway emulate`) and `ai-gateway serve --workers 1` on
127.0.0.1, the gateway's one model `bench` being the emulator's `gpt-4o-mini`. Every request is
the same streamed chat whose user message holds the emulator's marker `[[reply:<base64>]]`: the
answer is a scripted text of `--chunks - 2` words, which the emulator streams as one chunk per
word (plus the role chunk and the finish chunk: `--chunks` chunks), with no delay between them.

The same request is streamed three ways:

- `sse`: `POST /v1/chat/completions` with aiohttp (one pooled keep-alive connection per stream),
  reading the `data:` lines;
- `ws-mux`: one socket to `/v1/ws` with every stream in flight on it at once (the `websockets`
  client; `{"type": "request", ...}` out, `chunk` messages and `done` back);
- `ws-socks`: one socket per stream (the same as `ws-mux` at concurrency 1, then shown as `ws`).

Per round and concurrency level, each mode runs `--concurrency` streams side by side (1, then
the option's value), each stream making `--requests` requests one after another; the modes take
turns, in an order rotated every round. Sockets are opened before the clock starts (a client
keeps its socket); SSE connections are reused from the pool. Every answer is checked: the chunk
count and the reassembled text must be what the emulator sent.

Reported per mode: chunks/s (all chunks received / wall time; median of the rounds, and their
range), time to first chunk p50 and p90 (from sending the request to the first chunk parsed),
the gateway's CPU time per chunk (utime + stime from /proc) and the ratio to SSE's chunks/s at
the same concurrency. Each run's progress line shows the CPU use of the gateway, the emulator
and this client (which of them is the bottleneck). With >= 2 CPUs the gateway gets CPU 0 and
the emulator and this client CPU 1 (`--pin off` to leave them free).

    python -m bench.ws_stream                                   # 1,000 chunks, 3 rounds, 1 and 16
    python -m bench.ws_stream --chunks 200 --rounds 5 --concurrency 32
    python -m bench.ws_stream --ws-compression off              # no permessage-deflate offered
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp
from websockets.asyncio.client import ClientConnection, connect

from bench.procs import Server, free_port, running, set_affinity

MODEL = "bench"
UPSTREAM_MODEL = "gpt-4o-mini"
WORDS = ("stream", "each", "token", "as", "soon", "as", "it", "arrives", "from", "upstream")
GATEWAY_CONFIG = """\
models:
  - name: {model}
    provider: openai
    model: {upstream_model}
    api_base: http://127.0.0.1:{port}/v1
    api_key: sk-bench-not-a-secret
websocket:
  max_in_flight: {in_flight}
"""
SUT_CPUS = {0}
AUX_CPUS = {1}
MODES_C1 = ("sse", "ws")
MODES = ("sse", "ws-mux", "ws-socks")


class BenchError(RuntimeError):
    """A stream failed or did not deliver what the emulator sent."""


@dataclass
class Stream:
    """What one streamed request delivered."""

    chunks: int = 0
    first_s: float | None = None
    text: list[str] = field(default_factory=list)


@dataclass
class Run:
    """One mode at one concurrency in one round."""

    chunks: int
    wall_s: float
    cpu_s: float
    emulator_cpu_s: float
    client_cpu_s: float
    first_s: list[float]

    @property
    def rate(self) -> float:
        return self.chunks / self.wall_s


@dataclass(frozen=True)
class Target:
    http_url: str
    ws_url: str
    body: dict[str, Any]
    expected_text: str
    expected_chunks: int
    gateway_pid: int
    emulator_pid: int
    ws_compression: str | None


def reply_text(chunks: int) -> str:
    return " ".join(WORDS[i % len(WORDS)] for i in range(chunks - 2))


def request_body(text: str) -> dict[str, Any]:
    marker = base64.urlsafe_b64encode(text.encode()).decode()
    content = f"Stream this. [[reply:{marker}]]"
    return {
        "model": MODEL,
        "stream": True,
        "messages": [{"role": "user", "content": content}],
    }


def delta_text(data: Any) -> str:
    """The text of one chat.completion.chunk; an error object raises."""
    if not isinstance(data, dict) or "error" in data:
        raise BenchError(f"unexpected chunk: {str(data)[:300]}")
    choices = data.get("choices") or []
    if not choices:
        return ""
    content = choices[0].get("delta", {}).get("content")
    return content if isinstance(content, str) else ""


def add_chunk(stream: Stream, data: Any, started: float) -> None:
    if stream.first_s is None:
        stream.first_s = time.perf_counter() - started
    stream.chunks += 1
    stream.text.append(delta_text(data))


def check(stream: Stream, target: Target) -> Stream:
    text = "".join(stream.text)
    if stream.chunks != target.expected_chunks or text != target.expected_text:
        raise BenchError(
            f"stream delivered {stream.chunks} chunks ({len(text)} chars of text); "
            f"expected {target.expected_chunks} ({len(target.expected_text)} chars)"
        )
    return stream


# --- SSE -----------------------------------------------------------------------------------


async def sse_stream(session: aiohttp.ClientSession, target: Target) -> Stream:
    stream = Stream()
    started = time.perf_counter()
    async with session.post(target.http_url, json=target.body) as resp:
        if resp.status != 200:
            raise BenchError(f"SSE: HTTP {resp.status}: {(await resp.text())[:300]}")
        async for line in resp.content:
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                return check(stream, target)
            add_chunk(stream, json.loads(payload), started)
    raise BenchError("SSE: the stream ended without [DONE]")


# --- WebSocket -----------------------------------------------------------------------------


class Socket:
    """One WebSocket to the gateway: requests sent with fresh ids, answers dispatched by id."""

    def __init__(self, conn: ClientConnection, target: Target) -> None:
        self.conn = conn
        self.target = target
        self.ids = itertools.count()
        self.pending: dict[str, tuple[Stream, float, asyncio.Future[Stream]]] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.conn:
                msg = json.loads(raw)
                kind = msg.get("type")
                if kind == "pong":
                    continue
                entry = self.pending.get(msg.get("id", ""))
                if entry is None:
                    raise BenchError(f"WS: message for no request: {str(msg)[:300]}")
                stream, started, done = entry
                if kind == "chunk":
                    add_chunk(stream, msg["data"], started)
                elif kind == "done":
                    del self.pending[msg["id"]]
                    done.set_result(stream)
                else:
                    del self.pending[msg["id"]]
                    done.set_exception(BenchError(f"WS: {str(msg)[:300]}"))
            raise BenchError(f"WS: socket closed ({self.conn.close_code} {self.conn.close_reason})")
        except Exception as exc:
            for _, _, done in self.pending.values():
                if not done.done():
                    done.set_exception(exc)
            self.pending.clear()
            raise

    async def stream(self) -> Stream:
        rid = f"r{next(self.ids)}"
        done: asyncio.Future[Stream] = asyncio.get_running_loop().create_future()
        started = time.perf_counter()
        self.pending[rid] = (Stream(), started, done)
        message = {"type": "request", "id": rid, "endpoint": "chat.completions"}
        await self.conn.send(json.dumps({**message, "body": self.target.body}))
        return check(await done, self.target)

    async def close(self) -> None:
        await self.conn.close()
        self.reader.cancel()
        with suppress(asyncio.CancelledError, Exception):
            await self.reader


async def open_socket(target: Target) -> Socket:
    compression = "deflate" if target.ws_compression == "deflate" else None
    conn = await connect(target.ws_url, compression=compression, max_size=2**24)
    return Socket(conn, target)


# --- measuring -----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def timed(
    target: Target, workers: Sequence[Callable[[], Awaitable[Stream]]], requests: int
) -> Run:
    """Every worker makes ``requests`` streamed requests one after another, all side by side."""
    streams: list[Stream] = []

    async def worker(call: Callable[[], Awaitable[Stream]]) -> None:
        for _ in range(requests):
            streams.append(await call())

    cpu, emulator_cpu = cpu_seconds(target.gateway_pid), cpu_seconds(target.emulator_pid)
    client_cpu = time.process_time()
    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for call in workers:
            group.create_task(worker(call))
    wall = time.perf_counter() - started
    return Run(
        chunks=sum(s.chunks for s in streams),
        wall_s=wall,
        cpu_s=cpu_seconds(target.gateway_pid) - cpu,
        emulator_cpu_s=cpu_seconds(target.emulator_pid) - emulator_cpu,
        client_cpu_s=time.process_time() - client_cpu,
        first_s=[s.first_s for s in streams if s.first_s is not None],
    )


async def run_mode(
    mode: str, target: Target, session: aiohttp.ClientSession, concurrency: int, requests: int
) -> Run:
    if mode == "sse":
        calls = [lambda: sse_stream(session, target)] * concurrency
        return await timed(target, calls, requests)
    count = 1 if mode == "ws-mux" else concurrency
    sockets = [await open_socket(target) for _ in range(count)]
    try:
        calls = [sockets[i % count].stream for i in range(concurrency)]
        return await timed(target, calls, requests)
    finally:
        for sock in sockets:
            await sock.close()


def levels(concurrency: int) -> list[tuple[int, tuple[str, ...]]]:
    out: list[tuple[int, tuple[str, ...]]] = [(1, MODES_C1)]
    if concurrency > 1:
        out.append((concurrency, MODES))
    return out


async def measure(target: Target, args: argparse.Namespace) -> dict[tuple[int, str], list[Run]]:
    results: dict[tuple[int, str], list[Run]] = {}
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        probe = await open_socket(target)
        response = probe.conn.response
        negotiated = response.headers.get("Sec-WebSocket-Extensions") if response else None
        await probe.close()
        print(f"WebSocket extensions negotiated: {negotiated or 'none'}", flush=True)
        print("warm-up ...", flush=True)
        for concurrency, modes in levels(args.concurrency):
            for mode in modes:
                await run_mode(mode, target, session, concurrency, 1)
        for r in range(args.rounds):
            for concurrency, modes in levels(args.concurrency):
                shift = r % len(modes)
                order = modes[shift:] + modes[:shift]
                for mode in order:
                    run = await run_mode(mode, target, session, concurrency, args.requests)
                    results.setdefault((concurrency, mode), []).append(run)
                    print(
                        f"round {r + 1}/{args.rounds}  c={concurrency:<3d} {mode:9s}"
                        f" {run.rate:9.0f} chunks/s  CPU: gateway {run.cpu_s / run.wall_s:4.0%},"
                        f" emulator {run.emulator_cpu_s / run.wall_s:4.0%},"
                        f" client {run.client_cpu_s / run.wall_s:4.0%}",
                        flush=True,
                    )
    return results


# --- report --------------------------------------------------------------------------------


def quantile(values: list[float], q: int) -> float:
    """The q-th percentile (inclusive method); the value itself for a single sample."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def render(results: dict[tuple[int, str], list[Run]], args: argparse.Namespace) -> str:
    head = (
        f"{'conc':>4}  {'mode':9s} {'chunks/s':>9} {'(min-max)':>15}  {'TTFC p50':>9}"
        f" {'p90':>8}  {'gw CPU/chunk':>12}  {'WS/SSE':>6}"
    )
    lines = [head, "-" * len(head)]
    ratios: list[str] = []
    for concurrency, modes in levels(args.concurrency):
        sse = statistics.median(r.rate for r in results[(concurrency, "sse")])
        for mode in modes:
            runs = results[(concurrency, mode)]
            rates = [r.rate for r in runs]
            rate = statistics.median(rates)
            firsts = [f for r in runs for f in r.first_s]
            cpu_us = sum(r.cpu_s for r in runs) / sum(r.chunks for r in runs) * 1e6
            ratio = "" if mode == "sse" else f"{rate / sse:6.2f}"
            spread = f"({min(rates):.0f}-{max(rates):.0f})"
            lines.append(
                f"{concurrency:>4}  {mode:9s} {rate:9.0f} {spread:>15}"
                f"  {quantile(firsts, 50) * 1000:6.1f} ms {quantile(firsts, 90) * 1000:5.1f} ms"
                f"  {cpu_us:9.1f} us  {ratio:>6}"
            )
            if mode != "sse":
                ratios.append(f"c={concurrency} {mode}: {rate / sse:.2f}")
    lines.append("")
    lines.append("WS/SSE chunks/s (medians): " + "; ".join(ratios))
    return "\n".join(lines)


# --- processes -----------------------------------------------------------------------------


def ai_gateway() -> list[str]:
    beside = Path(sys.executable).with_name("ai-gateway")
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "ai_gateway"]


def gateway_env(data_dir: Path) -> dict[str, str]:
    """This environment without AI_GATEWAY_* settings, with a fresh data folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AI_GATEWAY_")}
    env["AI_GATEWAY_DATA_DIR"] = str(data_dir)
    env["AI_GATEWAY_DEMO"] = "false"
    return env


def start(stack: ExitStack, args: argparse.Namespace, logs: Path) -> tuple[Server, Server]:
    pin = args.pin == "on" or (
        args.pin == "auto" and (os.cpu_count() or 1) >= 2 and hasattr(os, "sched_setaffinity")
    )
    sut, aux = (SUT_CPUS, AUX_CPUS) if pin else (None, None)
    up_port, gw_port = free_port(), free_port()
    emulator = stack.enter_context(
        running(
            "emulator",
            [*ai_gateway(), "emulate", "--host", "127.0.0.1", "--port", str(up_port)],
            port=up_port,
            log_dir=logs,
            ready_path="/_emulator/stats",
            ready_timeout=args.ready_timeout,
            cpus=aux,
            env=gateway_env(logs / "emulator-data"),
        )
    )
    config = logs / "gateway.yaml"
    config.write_text(
        GATEWAY_CONFIG.format(
            model=MODEL,
            upstream_model=UPSTREAM_MODEL,
            port=up_port,
            in_flight=max(16, args.concurrency),
        )
    )
    argv = [*ai_gateway(), "serve", "--config", str(config), "--host", "127.0.0.1"]
    argv += ["--port", str(gw_port), "--workers", "1"]
    gateway = stack.enter_context(
        running(
            "gateway",
            argv,
            port=gw_port,
            log_dir=logs,
            ready_timeout=args.ready_timeout,
            cpus=sut,
            env=gateway_env(logs / "data"),
        )
    )
    set_affinity(gateway.popen.pid, sut)
    if aux is not None:
        os.sched_setaffinity(0, aux)
    print(
        f"gateway {gateway.base_url} (pid {gateway.popen.pid}), emulator {emulator.base_url};"
        f" pinning: {'gateway CPU 0, emulator and client CPU 1' if pin else 'off'}",
        flush=True,
    )
    return gateway, emulator


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=1000, help="chunks per answer (>= 3)")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (modes alternate)")
    parser.add_argument(
        "--concurrency", type=int, default=16, help="streams side by side (besides 1)"
    )
    parser.add_argument(
        "--requests", type=int, default=4, help="requests per stream per round, one after another"
    )
    parser.add_argument(
        "--ws-compression",
        choices=("deflate", "off"),
        default="deflate",
        help="permessage-deflate offered by the WebSocket client (its default, and browsers')",
    )
    parser.add_argument("--pin", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--ready-timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    if args.chunks < 3 or args.rounds < 1 or args.concurrency < 1 or args.requests < 1:
        parser.error("need --chunks >= 3, --rounds >= 1, --concurrency >= 1, --requests >= 1")
    return args


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds the ExitStack, which stops both servers


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    text = reply_text(args.chunks)
    with tempfile.TemporaryDirectory(prefix="bench-ws-") as tmp, ExitStack() as stack:
        gateway, emulator = start(stack, args, Path(tmp))
        target = Target(
            http_url=gateway.base_url + "/v1/chat/completions",
            ws_url=gateway.base_url.replace("http://", "ws://") + "/v1/ws",
            body=request_body(text),
            expected_text=text,
            expected_chunks=args.chunks,
            gateway_pid=gateway.popen.pid,
            emulator_pid=emulator.popen.pid,
            ws_compression=None if args.ws_compression == "off" else "deflate",
        )
        try:
            results = asyncio.run(measure(target, args))
        except Exception:
            print(f"gateway log (tail):\n{gateway.log_tail()}", file=sys.stderr)
            raise
    print()
    print(
        f"{args.chunks} chunks per answer; {args.rounds} rounds; {args.requests} requests per"
        f" stream per round; WebSocket compression offered: {args.ws_compression}"
    )
    print(render(results, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
