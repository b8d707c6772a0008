"""The production path against the floor, side by side in one run (issue 18, part 3).

Targets, all started once and measured round after round (the order rotated each round):

- **passthrough**: the floor (`bench/passthrough.py`: Starlette + aiohttp);
- **embedded**: `ai-gateway serve` on its embedded defaults (no authentication, no Redis);
- **local**: the gateway with authentication, a virtual key (its own rate limit and a daily
  budget) and per-user limits, every check in process (no Redis);
- **redis**: the same configuration with `REDIS_URL` set: limits and budget shared through
  Redis, as several instances run.

Each round measures every target with wrk at `--connections` (default 32: throughput) and at
concurrency 1 (latency), then the first content chunk of a streamed answer one request at a
time, through each gateway and directly from the upstream (`--streams` requests each; the time
from sending the request to the first event with content, read by a Python client). Reported:
the median over rounds of each figure and of each round's ratios and differences:

- `redis` req/s over `passthrough` req/s at `--connections` (the issue's target: >= 0.6);
- `redis` p50 minus `local` p50 at concurrency 1 (target: <= +150 us);
- a gateway's first-content p50 minus the upstream's (target: <= +1 ms).

Pinning as in `bench/run.py`: the servers under test on CPU 0, wrk, the upstream and this
process on CPU 1. Redis is the machine's (`--redis-url`), not pinned. Keys are written under a
fresh prefix and deleted at the end.

    python -m bench.admission --rounds 3 --duration 5
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import redis

from bench.cpu import cpu_seconds
from bench.load import LoadSpec, Measurement, measure, pick_tool, tool_version
from bench.procs import Server, free_port, running
from bench.run import AUX_CPUS, BODY, CHAT_PATH, MASTER_KEY, SUT_CPUS

REPO = Path(__file__).resolve().parent.parent

RESULTS_DIR = Path(__file__).resolve().parent / "results"
GATEWAYS = ("embedded", "local", "redis")
# The bench model is priced (a budget admits only priced models) and its output bounded (what a
# request may cost is reserved against the budget while it runs).
GATEWAY_CONFIG = """\
models:
  - name: bench
    provider: openai
    model: bench-model
    api_base: http://127.0.0.1:{port}/v1
    api_key: sk-bench-not-a-secret
registry:
  - provider: openai
    id: bench-model
    mode: chat
    context_window: 128000
    max_output_tokens: 1000
    input_price: "0.15"
    output_price: "0.60"
"""
# Limits high enough to admit the load: every check runs on every request, nothing is refused.
KEYS_CONFIG = """\
security:
  rate_limits:
    users: {bench: {rps: 10000000, burst: 10000000}}
"""
STREAM_BODY = json.dumps({**json.loads(BODY), "stream": True}).encode()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--streams", type=int, default=300, help="streamed requests per target")
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--tree", type=Path, default=REPO, help="the source tree of the gateways")
    parser.add_argument(
        "--before",
        type=Path,
        default=None,
        help="another source tree (e.g. a worktree of an older commit) measured as "
        "'redis-before': the redis configuration on that tree",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 20 or args.duration <= 0 or args.connections < 1:
        parser.error("need 1 <= --rounds <= 20, --duration > 0, --connections >= 1")
    return args


def gateways(args: argparse.Namespace) -> tuple[str, ...]:
    return (*GATEWAYS, "redis-before") if args.before else GATEWAYS


def create_key(tree: Path, data: Path, config: Path) -> str:
    """A virtual key of user `bench` with its own rate limit and a daily budget."""
    argv = [sys.executable, "-m", "ai_gateway.cli", "keys", "create", "--config", str(config)]
    argv += ["--user", "bench", "--rps", "10000000", "--budget", "1000000"]
    argv += ["--budget-period", "day", "--json"]
    env = {**os.environ, "AI_GATEWAY_DATA_DIR": str(data), "PYTHONPATH": str(tree / "src")}
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=True).stdout
    key: str = json.loads(out)["key"]
    return key


def start(stack: ExitStack, args: argparse.Namespace, tmp: Path, prefix: str) -> dict[str, Any]:
    """The upstream and every target; for each target its URL and credential."""
    py = sys.executable
    up_port = free_port()
    upstream = stack.enter_context(
        running(
            "upstream",
            [py, "-m", "bench.upstream", "--port", str(up_port)],
            port=up_port,
            log_dir=tmp,
            cpus=AUX_CPUS,
        )
    )
    targets: dict[str, tuple[Server, str | None]] = {}
    port = free_port()
    argv = [
        py,
        "-m",
        "bench.passthrough",
        "--port",
        str(port),
        "--upstream",
        f"{upstream.base_url}/v1",
    ]
    targets["passthrough"] = (
        stack.enter_context(running("passthrough", argv, port=port, log_dir=tmp, cpus=SUT_CPUS)),
        None,
    )
    for name in gateways(args):
        tree = args.before if name == "redis-before" else args.tree
        data = tmp / name
        data.mkdir()
        config = data / "gateway.yaml"
        text = GATEWAY_CONFIG.format(port=up_port)
        config.write_text(text + KEYS_CONFIG if name != "embedded" else text)
        env = {**os.environ, "AI_GATEWAY_DATA_DIR": str(data), "PYTHONPATH": str(tree / "src")}
        env.pop("REDIS_URL", None)
        auth = None
        if name != "embedded":
            env["AI_GATEWAY_MASTER_KEY"] = MASTER_KEY
            auth = create_key(tree, data, config)
        if name.startswith("redis"):
            env["REDIS_URL"] = args.redis_url
            env["AI_GATEWAY_REDIS_PREFIX"] = prefix
        port = free_port()
        argv = [sys.executable, "-m", "ai_gateway.cli", "serve", "--config", str(config)]
        argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        server = stack.enter_context(
            running(name, argv, port=port, log_dir=tmp, cpus=SUT_CPUS, env=env, ready_timeout=60)
        )
        targets[name] = (server, auth)
    return {"upstream": upstream, "targets": targets}


def first_content_us(host: str, port: int, auth: str | None, count: int) -> list[float]:
    """Microseconds from sending a streamed request to reading its first event with content,
    `count` times one after the other on one keep-alive connection."""
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = f"Bearer {auth}"
    conn = http.client.HTTPConnection(host, port, timeout=10)
    times: list[float] = []
    try:
        for _ in range(count + 10):  # the first ten warm up
            started = time.perf_counter()
            conn.request("POST", CHAT_PATH, body=STREAM_BODY, headers=headers)
            resp = conn.getresponse()
            if resp.status != 200:
                raise RuntimeError(
                    f"streamed request answered {resp.status}: {resp.read()[:300]!r}"
                )
            seen = None
            while line := resp.readline():
                if seen is None and line.startswith(b"data: {"):
                    choices = json.loads(line[6:]).get("choices") or [{}]
                    if choices[0].get("delta", {}).get("content"):
                        seen = time.perf_counter()
            if seen is None:
                raise RuntimeError("the stream had no content")
            times.append((seen - started) * 1e6)
    finally:
        conn.close()
    return times[10:]


def measure_round(
    order: list[str], found: dict[str, Any], spec: LoadSpec, args: argparse.Namespace
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for name in order:
        server, auth = found["targets"][name]
        url = server.base_url + CHAT_PATH
        with_auth = LoadSpec(spec.tool, spec.body, spec.cpus, 0.0, auth)
        print(f"  [{name}] {args.connections} connections, then 1 ...", flush=True)
        measure(with_auth, url, args.connections, args.warmup)
        before = cpu_seconds(server.popen.pid)
        many = measure(with_auth, url, args.connections, args.duration)
        cpu_us = (cpu_seconds(server.popen.pid) - before) * 1e6 / max(1, many.requests)
        measure(with_auth, url, 1, args.warmup)
        one = measure(with_auth, url, 1, args.duration)
        figures[name] = {"many": many, "one": one, "cpu_us_per_request": cpu_us}
    upstream = found["upstream"]
    streams = {"direct": first_content_us("127.0.0.1", upstream.port, None, args.streams)}
    for name in order:
        if name != "passthrough":
            server, auth = found["targets"][name]
            streams[name] = first_content_us("127.0.0.1", server.port, auth, args.streams)
    for name, times in streams.items():
        figures.setdefault(name, {})["first_content_p50_us"] = statistics.median(times)
    return figures


def ratios(figures: dict[str, Any]) -> dict[str, float]:
    names = [name for name in figures if name not in ("direct", "passthrough")]
    names.sort(key=lambda name: (len(name), name))
    floor = figures["passthrough"]["many"].rps
    out = {f"{name}/passthrough rps": figures[name]["many"].rps / floor for name in names}
    # The same ratio from CPU time per request (what req/s is when each has its core to itself):
    # far less disturbed by other work on the machine than req/s.
    floor_cpu = figures["passthrough"]["cpu_us_per_request"]
    for name in names:
        out[f"{name}/passthrough by CPU"] = floor_cpu / figures[name]["cpu_us_per_request"]
    local = figures["local"]["one"].p50_us
    for name in names:
        if name.startswith("redis"):
            out[f"{name} - local p50 @1 (us)"] = figures[name]["one"].p50_us - local
    out["local - embedded p50 @1 (us)"] = local - figures["embedded"]["one"].p50_us
    direct = figures["direct"]["first_content_p50_us"]
    for name in names:
        out[f"{name} - direct first content (us)"] = figures[name]["first_content_p50_us"] - direct
    return out


def render(rounds: list[dict[str, Any]], connections: int) -> str:
    lines = [
        f"| target | req/s @{connections} | p50 @{connections} | req/s @1 | p50 @1 "
        "| first content p50 | CPU per request @" + str(connections) + " |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in (
        "direct",
        "passthrough",
        *sorted(set(rounds[0]) - {"direct", "passthrough"}, key=lambda n: (len(n), n)),
    ):
        row = [name]
        if name == "direct":
            row += ["", "", "", ""]
        else:
            row.append(f"{statistics.median(r[name]['many'].rps for r in rounds):,.0f}")
            row.append(f"{statistics.median(r[name]['many'].p50_us for r in rounds) / 1000:.2f} ms")
            row.append(f"{statistics.median(r[name]['one'].rps for r in rounds):,.0f}")
            row.append(f"{statistics.median(r[name]['one'].p50_us for r in rounds):.0f} us")
        first = [
            r[name]["first_content_p50_us"] for r in rounds if "first_content_p50_us" in r[name]
        ]
        row.append(f"{statistics.median(first):.0f} us" if first else "")
        cpu = [r[name]["cpu_us_per_request"] for r in rounds if "cpu_us_per_request" in r[name]]
        row.append(f"{statistics.median(cpu):.0f} us" if cpu else "")
        lines.append("| " + " | ".join(row) + " |")
    per_round = [ratios(r) for r in rounds]
    lines += ["", "| comparison (median of rounds) | value | rounds |", "|---|---:|---|"]
    for label in per_round[0]:
        values = [r[label] for r in per_round]
        ratio = "rps" in label or "CPU" in label
        shown = ", ".join(f"{v:.3f}" if ratio else f"{v:+.0f}" for v in values)
        median = statistics.median(values)
        lines.append(
            f"| {label} | {median:.3f} | {shown} |"
            if ratio
            else f"| {label} | {median:+.0f} | {shown} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pin = (os.cpu_count() or 1) >= 2 and hasattr(os, "sched_setaffinity")
    if pin:
        os.sched_setaffinity(0, AUX_CPUS)  # the stream client: beside wrk and the upstream
    tool = pick_tool("auto")
    spec = LoadSpec(tool=tool, body=BODY, cpus=AUX_CPUS if pin else None, warmup_s=args.warmup)
    prefix = f"bench-{uuid.uuid4().hex[:10]}"
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    print(f"load generator: {tool_version(tool)}; load average {load_at_start}", flush=True)
    rounds: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-admission-") as tmp, ExitStack() as stack:
            found = start(stack, args, Path(tmp), prefix)
            for i in range(args.rounds):
                names = ("passthrough", *gateways(args))
                order = list(names[i % len(names) :] + names[: i % len(names)])
                print(f"round {i + 1}/{args.rounds}: {', '.join(order)}", flush=True)
                rounds.append(measure_round(order, found, spec, args))
    finally:
        client = redis.Redis.from_url(args.redis_url)
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)
        client.close()
    table = render(rounds, args.connections)
    print("\n" + table)
    doc = {
        "command": "python -m bench.admission " + " ".join(sys.argv[1:]),
        "load_average_at_start": load_at_start,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "rounds": [
            {
                name: {k: (v.__dict__ if isinstance(v, Measurement) else v) for k, v in fig.items()}
                for name, fig in r.items()
            }
            for r in rounds
        ],
        "comparisons": [ratios(r) for r in rounds],
    }
    path = args.output or RESULTS_DIR / f"admission-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
