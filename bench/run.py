"""The benchmark: direct upstream vs. pass-through floor vs. gateway.

Starts the zero-latency upstream (``bench.upstream``), the pass-through proxy
(``bench.passthrough``) and the gateway (``ai-gateway serve --workers 1``), then for each target
measures throughput at ``--connections`` and latency at concurrency 1 (each after a warm-up),
prints a table with ratios and writes ``bench/results/<timestamp>.json``.

CPU pinning (on by default when there are >= 2 CPUs): the system under test gets CPU 0 to itself;
the load generator and, when it is not the one measured, the upstream share CPU 1. For the
"direct" target the upstream is moved to CPU 0 while it is measured.

Run: ``python -m bench.run [--duration 10] [--connections 64] [--only direct,passthrough]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import Any

from bench.load import LoadError, LoadSpec, measure, pick_tool, tool_version
from bench.procs import Server, StartError, free_port, running, set_affinity
from bench.report import TARGETS, TargetResult, combine, document, render

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
CHAT_PATH = "/v1/chat/completions"
BODY = '{"model": "bench", "messages": [{"role": "user", "content": "Say hello"}]}'
GATEWAY_CONFIG = """\
models:
  - name: bench
    provider: openai
    model: bench-model
    api_base: http://127.0.0.1:{port}/v1
    api_key: sk-bench-not-a-secret
"""
# --keys: authentication, a virtual key and per-user rate limits on (limits high enough to admit
# the benchmark's load: the checks run on every request, nothing is refused).
SECURITY_CONFIG = """\
security:
  rate_limits:
    users: {bench: {rps: 10000000, burst: 10000000}}
"""
# --cache: the response cache on; every request of the benchmark asks the same question, so all
# but the first are hits (served without an upstream call).
CACHE_CONFIG = """\
cache: {enabled: true}
"""
MASTER_KEY = "sk-bench-master-not-a-secret"
SUT_CPUS = {0}
AUX_CPUS = {1}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up before each")
    parser.add_argument("--connections", type=int, default=64, help="for the throughput test")
    parser.add_argument("--only", default=",".join(TARGETS), help="comma-separated targets")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; medians are reported")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--pin", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--gateway-bin", default=None, help="the ai-gateway executable")
    parser.add_argument("--ready-timeout", type=float, default=60.0)
    parser.add_argument("--output", type=Path, default=None, help="JSON path (default: results/)")
    parser.add_argument(
        "--cache",
        action="store_true",
        help="the response cache on: the gateway answers every request but the first from it",
    )
    parser.add_argument(
        "--keys",
        action="store_true",
        help="gateway with authentication on, called with a virtual key under per-user and "
        "per-key rate limits (all admitting the load)",
    )
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(TARGETS)
    if unknown:
        parser.error(f"unknown target(s) {sorted(unknown)}; choose from {', '.join(TARGETS)}")
    if not 0 < args.duration <= 300 or not 0 <= args.warmup <= 60 or args.connections < 1:
        parser.error("need 0 < --duration <= 300, 0 <= --warmup <= 60, --connections >= 1")
    if not 1 <= args.repeat <= 10:
        parser.error("need 1 <= --repeat <= 10")
    return args


def use_pinning(mode: str) -> bool:
    usable = (os.cpu_count() or 1) >= 2 and hasattr(os, "sched_setaffinity")
    if mode == "on" and not usable:
        raise SystemExit("--pin on needs >= 2 CPUs and sched_setaffinity")
    return usable if mode == "auto" else mode == "on"


def gateway_executable(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    beside = Path(sys.executable).with_name("ai-gateway")
    return str(beside) if beside.exists() else shutil.which("ai-gateway")


def check_response(url: str, auth: str | None = None) -> None:
    """One request before loading: the target must answer 200 with a chat.completion."""
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = f"Bearer {auth}"
    request = urllib.request.Request(  # noqa: S310 (loopback URL built by this module)
        url, data=BODY.encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            payload = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode(errors="replace")
        raise LoadError(f"POST {url} answered {exc.code}: {detail}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise LoadError(f"POST {url} failed: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("object") != "chat.completion":
        raise LoadError(f"POST {url} did not return a chat.completion: {str(payload)[:300]}")


def measure_target(name: str, url: str, spec: LoadSpec, args: argparse.Namespace) -> TargetResult:
    try:
        check_response(url, spec.auth)
        print(f"[{name}] throughput at {args.connections} connections ...", flush=True)
        throughput = measure(spec, url, args.connections, args.duration)
        print(f"[{name}] latency at concurrency 1 ...", flush=True)
        latency = measure(spec, url, 1, args.duration)
    except LoadError as exc:
        print(f"[{name}] failed: {exc}", file=sys.stderr, flush=True)
        return TargetResult(error=str(exc))
    return TargetResult(throughput=throughput, latency=latency)


def start_servers(
    stack: ExitStack,
    targets: list[str],
    args: argparse.Namespace,
    logs: Path,
    pin: bool,
) -> tuple[Server, dict[str, Server], dict[str, TargetResult]]:
    """Start the upstream and the proxies that are needed; failures become results."""
    py = sys.executable
    sut, aux = (SUT_CPUS, AUX_CPUS) if pin else (None, None)
    up_port = free_port()
    upstream = stack.enter_context(
        running(
            "upstream",
            [py, "-m", "bench.upstream", "--port", str(up_port)],
            port=up_port,
            log_dir=logs,
            cpus=aux,
            ready_timeout=args.ready_timeout,
        )
    )
    upstream_v1 = f"{upstream.base_url}/v1"
    servers: dict[str, Server] = {}
    failed: dict[str, TargetResult] = {}
    commands: dict[str, list[str]] = {}
    if "passthrough" in targets:
        port = free_port()
        commands["passthrough"] = [py, "-m", "bench.passthrough", "--port", str(port)]
        commands["passthrough"] += ["--upstream", upstream_v1]
    if "gateway" in targets:
        exe = gateway_executable(args.gateway_bin)
        if exe is None:
            failed["gateway"] = TargetResult(error="ai-gateway executable not found")
        else:
            config = logs / "gateway.yaml"
            text = GATEWAY_CONFIG.format(port=up_port)
            text += SECURITY_CONFIG if args.keys else ""
            config.write_text(text + CACHE_CONFIG if args.cache else text)
            port = free_port()
            commands["gateway"] = [exe, "serve", "--config", str(config)]
            commands["gateway"] += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = {**os.environ, "AI_GATEWAY_DATA_DIR": str(logs / "data")}
    if args.keys:
        env["AI_GATEWAY_MASTER_KEY"] = MASTER_KEY
    for name, argv in commands.items():
        try:
            servers[name] = stack.enter_context(
                running(
                    name,
                    argv,
                    port=int(argv[argv.index("--port") + 1]),
                    log_dir=logs,
                    cpus=sut,
                    ready_timeout=args.ready_timeout,
                    env=env if name == "gateway" else None,
                )
            )
        except (StartError, OSError) as exc:
            print(f"[{name}] could not start: {exc}", file=sys.stderr, flush=True)
            failed[name] = TargetResult(error=f"could not start: {exc}")
    return upstream, servers, failed


def create_key(args: argparse.Namespace, logs: Path) -> str:
    """A virtual key for user `bench` (its own rps limit too), in the gateway's data directory."""
    exe = gateway_executable(args.gateway_bin) or "ai-gateway"
    argv = [exe, "keys", "create", "--user", "bench", "--rps", "10000000", "--json"]
    env = {**os.environ, "AI_GATEWAY_DATA_DIR": str(logs / "data")}
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=True).stdout
    key: str = json.loads(out)["key"]
    return key


def run(args: argparse.Namespace) -> dict[str, Any]:
    targets = [t for t in TARGETS if t in args.only.split(",")]
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    pin = use_pinning(args.pin)
    tool = pick_tool(args.loadgen)
    spec = LoadSpec(tool=tool, body=BODY, cpus=AUX_CPUS if pin else None, warmup_s=args.warmup)
    print(f"load generator: {tool_version(tool)}; pinning: {'on' if pin else 'off'}", flush=True)
    rounds: dict[str, list[TargetResult]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, ExitStack() as stack:
        if args.keys:
            spec = dataclasses.replace(spec, auth=create_key(args, Path(tmp)))
        upstream, servers, failed = start_servers(stack, targets, args, Path(tmp), pin)
        rounds.update({name: [res] for name, res in failed.items()})
        for i in range(args.repeat):
            if args.repeat > 1:
                print(f"round {i + 1}/{args.repeat}", flush=True)
            for name in targets:
                done = rounds.setdefault(name, [])
                if done and done[-1].error:
                    continue
                if name == "direct":
                    set_affinity(upstream.popen.pid, SUT_CPUS if pin else None)
                    done.append(measure_target(name, upstream.base_url + CHAT_PATH, spec, args))
                    set_affinity(upstream.popen.pid, AUX_CPUS if pin else None)
                else:
                    url = servers[name].base_url + CHAT_PATH
                    done.append(measure_target(name, url, spec, args))
    settings = {
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "connections": args.connections,
        "repeat": args.repeat,
        "load_average_at_start": load_at_start,
        "targets": targets,
        "load_generator": tool_version(tool),
        "pinning": (
            {"system_under_test": sorted(SUT_CPUS), "load_generator_and_upstream": sorted(AUX_CPUS)}
            if pin
            else None
        ),
        "request": {"path": CHAT_PATH, "body": json.loads(BODY)},
        "command": "python -m bench.run " + " ".join(sys.argv[1:]),
        "keys_and_limits": args.keys,
        "response_cache": args.cache,
    }
    return {"rounds": rounds, "settings": settings}


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds the ExitStack, which stops every server


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    outcome = run(args)
    rounds: dict[str, list[TargetResult]] = outcome["rounds"]
    results = {name: combine(runs) for name, runs in rounds.items()}
    print()
    print(render(results, args.connections))
    doc = document(rounds, outcome["settings"], REPO)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    path: Path = args.output or RESULTS_DIR / f"{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwritten: {path}")
    return 1 if any(r.error for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
