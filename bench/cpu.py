"""Gateway CPU time per request, for comparing builds (less sensitive to a busy machine than
req/s).

Each build is a source tree (a `git worktree` of a commit, or this checkout): its gateway runs
with this interpreter and `PYTHONPATH=<tree>/src`, pinned to CPU 0, against the zero-latency
upstream; wrk (one thread, pinned to CPU 1 with the upstream) drives it for a warm-up, then for
the measurement, and the gateway's utime + stime over the measurement (from /proc) is divided by
the requests served. Builds are measured interleaved, round after round; medians are reported.
With --alternate every gateway is started once and they are driven one at a time, round after
round (--restarts N: N times, with fresh processes); with --side-by-side every build runs at the
same time on CPU 0 (each driven by its own wrk), so the machine's slow and fast moments fall on
all of them alike, but each gets a fraction of the core (which understates the ratios).

    python -m bench.cpu --alternate --restarts 6 --rounds 8 --duration 1 \
        --build before=/tmp/wt-a1d19fc --build after=.
    python -m bench.cpu --build after=. --keys after   # authentication, key and limits on
    python -m bench.cpu --alternate --build plain=. --build templated=. --prompt templated

The first build is the reference: for each other build the median of the per-round ratios is
printed too (rounds are interleaved, so each ratio compares runs a few seconds apart).

Needs Linux, wrk and two CPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.load import LUA_SCRIPT, RESULT_PREFIX
from bench.procs import Server, free_port, running
from bench.run import BODY, CACHE_CONFIG, CHAT_PATH, GATEWAY_CONFIG, MASTER_KEY, SECURITY_CONFIG

# The cache on with every request a miss: its in-process store bounded at 4 MiB, full after the
# warm-up, so each miss stores an entry and evicts an older one, as a gateway's store does in the
# steady state; with the default bound (64 MiB) a run of a few seconds would measure the heap
# growing to it instead.
CACHE_MISSES_CONFIG = """\
cache: {enabled: true, max_bytes: 4194304}
"""

# --prompt: the benchmark's question through a prompt template (a system message with one
# variable, rendered by the sandbox, then the request's own message).
PROMPT_TEMPLATE = {
    "template": {"messages": [{"role": "system", "content": "You are a {{ tone }} assistant."}]},
    "variables": {"type": "object", "properties": {"tone": {"type": "string"}}},
}
PROMPT_BODY = json.dumps(
    {
        **json.loads(BODY),
        "prompt": {"id": "bench", "version": 1, "variables": {"tone": "terse"}},
    }
)

# --rendered: a plain request with the messages the template renders (the system message, then
# the question), no template: what a templated request costs over sending the same prompt itself.
RENDERED_BODY = json.dumps(
    {
        **json.loads(BODY),
        "messages": [
            {"role": "system", "content": "You are a terse assistant."},
            *json.loads(BODY)["messages"],
        ],
    }
)

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def wrk(
    url: str,
    connections: int,
    seconds: int,
    auth: str | None,
    unique: bool = False,
    body: str = BODY,
) -> int:
    env = {**os.environ, "BENCH_BODY": body}
    if auth:
        env["BENCH_AUTH"] = auth
    if unique:  # every request a different question (wrk_post.lua)
        env["BENCH_UNIQUE"] = "1"
    argv = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    argv += ["-s", str(LUA_SCRIPT), url]
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith(RESULT_PREFIX))
    raw = json.loads(line[len(RESULT_PREFIX) :])
    if raw["errors_status"]:
        raise RuntimeError(f"{raw['errors_status']} non-2xx answers: check the gateway's log")
    return int(raw["requests"])


def create_template(tree: Path, data: Path) -> None:
    """The template PROMPT_BODY names, in the build's database (as an operator would)."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "AI_GATEWAY_DATA_DIR": str(data)}
    argv = [sys.executable, "-m", "ai_gateway.cli", "prompts", "create", "bench"]
    argv += ["--file", json.dumps(PROMPT_TEMPLATE)]
    subprocess.run(argv, capture_output=True, text=True, env=env, check=True)


def create_key(tree: Path, data: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "AI_GATEWAY_DATA_DIR": str(data)}
    argv = [sys.executable, "-m", "ai_gateway.cli", "keys", "create", "--user", "bench"]
    argv += ["--rps", "10000000", "--json"]
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=True).stdout
    key: str = json.loads(out)["key"]
    return key


@dataclass
class Build:
    name: str
    tree: Path
    keys: bool
    env: dict[str, str]
    cache: bool = False  # the response cache on
    unique: bool = False  # every request a different question (with cache: all misses)
    prompt: bool = False  # every request renders a prompt template (PROMPT_BODY)
    rendered: bool = False  # every request sends what the template renders (RENDERED_BODY)

    @property
    def body(self) -> str:
        if self.prompt:
            return PROMPT_BODY
        return RENDERED_BODY if self.rendered else BODY


@contextmanager
def started(build: Build, upstream_port: int, tmp: Path) -> Iterator[tuple[Server, str | None]]:
    """The build's gateway, pinned to CPU 0, and the credential to call it with."""
    data = tmp / f"data-{time.monotonic_ns()}"
    config = tmp / f"gateway-{time.monotonic_ns()}.yaml"
    text = GATEWAY_CONFIG.format(port=upstream_port)
    text += SECURITY_CONFIG if build.keys else ""
    if build.cache:
        text += CACHE_MISSES_CONFIG if build.unique else CACHE_CONFIG
    config.write_text(text)
    env = {**os.environ, "PYTHONPATH": str(build.tree / "src"), "AI_GATEWAY_DATA_DIR": str(data)}
    env.update(build.env)
    auth = None
    if build.prompt:
        create_template(build.tree, data)
    if build.keys:
        env["AI_GATEWAY_MASTER_KEY"] = MASTER_KEY
        auth = create_key(build.tree, data)
    port = free_port()
    argv = [sys.executable, "-m", "ai_gateway.cli", "serve", "--config", str(config)]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    with running(build.name, argv, port=port, log_dir=tmp, cpus={0}, env=env) as gw:
        yield gw, auth


def load_all(
    gateways: Sequence[tuple[Server, str | None]],
    builds: Sequence[Build],
    args: argparse.Namespace,
) -> list[float]:
    """Warm up, then drive every gateway at once (one wrk each); µs of CPU per request each."""

    def drive(seconds: int) -> list[int]:
        with ThreadPoolExecutor(len(gateways)) as pool:
            jobs = [
                pool.submit(
                    wrk,
                    gw.base_url + CHAT_PATH,
                    args.connections,
                    seconds,
                    auth,
                    build.unique,
                    build.body,
                )
                for (gw, auth), build in zip(gateways, builds, strict=True)
            ]
            return [job.result() for job in jobs]

    drive(args.warmup)
    before = [cpu_seconds(gw.popen.pid) for gw, _ in gateways]
    started_at = time.monotonic()
    served = drive(args.duration)
    elapsed = time.monotonic() - started_at
    used = [cpu_seconds(gw.popen.pid) - b for (gw, _), b in zip(gateways, before, strict=True)]
    for (gw, _), n, cpu in zip(gateways, served, used, strict=True):
        print(f"  {gw.name}: {n / elapsed:.0f} req/s, CPU {cpu / elapsed:.0%}", file=sys.stderr)
    return [cpu / n * 1e6 for cpu, n in zip(used, served, strict=True)]


def alternate(
    builds: Sequence[Build], upstream_port: int, args: argparse.Namespace, tmp: Path
) -> dict[str, list[float]]:
    """Every gateway started once, then driven one at a time, round after round: each has the
    core to itself while measured, and neighbouring slices share the machine's state."""
    results: dict[str, list[float]] = {b.name: [] for b in builds}
    with ExitStack() as stack:
        load = {b.name: (b.unique, b.body) for b in builds}
        gateways = [stack.enter_context(started(b, upstream_port, tmp)) for b in builds]
        for gw, auth in gateways:
            wrk(gw.base_url + CHAT_PATH, args.connections, args.warmup, auth, *load[gw.name])
        for i in range(args.rounds):
            order = gateways if i % 2 == 0 else gateways[::-1]
            for gw, auth in order:
                before = cpu_seconds(gw.popen.pid)
                url = gw.base_url + CHAT_PATH
                served = wrk(url, args.connections, args.duration, auth, *load[gw.name])
                value = (cpu_seconds(gw.popen.pid) - before) / served * 1e6
                results[gw.name].append(value)
                print(f"round {i + 1} {gw.name}: {value:.1f} µs/request", flush=True)
    return results


def measure_round(
    builds: Sequence[Build], upstream_port: int, args: argparse.Namespace, tmp: Path
) -> list[float]:
    if args.side_by_side:
        with ExitStack() as stack:
            gateways = [stack.enter_context(started(b, upstream_port, tmp)) for b in builds]
            return load_all(gateways, builds, args)
    values = []
    for build in builds:
        with started(build, upstream_port, tmp) as gateway:
            values += load_all([gateway], [build], args)
    return values


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", action="append", required=True, help="NAME=SOURCE_TREE")
    parser.add_argument(
        "--keys",
        action="append",
        default=[],
        help="NAME of a build to run with authentication, a virtual key and rate limits on",
    )
    parser.add_argument(
        "--env", action="append", default=[], help="NAME:VAR=VALUE, for one build's gateway"
    )
    parser.add_argument(
        "--cache", action="append", default=[], help="NAME of a build to run with the cache on"
    )
    parser.add_argument(
        "--unique",
        action="append",
        default=[],
        help="NAME of a build whose every request asks a different question (cache misses)",
    )
    parser.add_argument(
        "--prompt",
        action="append",
        default=[],
        help="NAME of a build whose every request renders a prompt template",
    )
    parser.add_argument(
        "--rendered",
        action="append",
        default=[],
        help="NAME of a build whose every request sends, as a plain request, the messages the "
        "--prompt template renders",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--side-by-side",
        action="store_true",
        help="run every build at once, sharing CPU 0 (each with its own wrk): a slower or "
        "faster moment of the machine then affects them alike",
    )
    parser.add_argument(
        "--alternate",
        action="store_true",
        help="start every build once, then drive them one at a time for --duration each, round "
        "after round (each has CPU 0 to itself while measured; paired rounds are seconds apart)",
    )
    parser.add_argument(
        "--restarts",
        type=int,
        default=1,
        help="with --alternate: start every gateway this many times (--rounds each); one "
        "process can be a few percent faster or slower than another of the same build (memory "
        "layout), so several are pooled",
    )
    args = parser.parse_args(argv)
    trees = dict(item.split("=", 1) for item in args.build)
    envs: dict[str, dict[str, str]] = {name: {} for name in trees}
    for item in args.env:
        name, _, assignment = item.partition(":")
        var, _, value = assignment.partition("=")
        envs[name][var] = value
    builds = [
        Build(
            name,
            Path(tree).resolve(),
            name in args.keys,
            envs[name],
            cache=name in args.cache,
            unique=name in args.unique,
            prompt=name in args.prompt,
            rendered=name in args.rendered,
        )
        for name, tree in trees.items()
    ]
    results: dict[str, list[float]] = {b.name: [] for b in builds}
    with tempfile.TemporaryDirectory(prefix="bench-cpu-") as tmp, ExitStack() as stack:
        up_port = free_port()
        stack.enter_context(
            running(
                "upstream",
                [sys.executable, "-m", "bench.upstream", "--port", str(up_port)],
                port=up_port,
                log_dir=Path(tmp),
                cpus={1},
            )
        )
        for _ in range(args.restarts if args.alternate else 0):  # fresh processes each time
            for name, values in alternate(builds, up_port, args, Path(tmp)).items():
                results[name] += values
        for i in range(0 if args.alternate else args.rounds):
            values = measure_round(builds, up_port, args, Path(tmp))
            for build, value in zip(builds, values, strict=True):
                results[build.name].append(value)
                print(f"round {i + 1} {build.name}: {value:.1f} µs/request", flush=True)
    print(f"\nmedian µs of gateway CPU per request ({args.connections} connections):")
    names = list(results)
    base = results[names[0]]
    for name, values in results.items():
        if name != names[0]:
            # Paired by round: neighbours in time share the machine's state, so the ratio of
            # each round is steadier than the ratio of the medians on a shared machine.
            ratios = [v / b for v, b in zip(values, base, strict=True)]
            print(f"  {name} / {names[0]}: median ratio {statistics.median(ratios):.3f}")
        each = ", ".join(f"{v:.0f}" for v in values)
        print(f"  {name:<16} {statistics.median(values):7.1f}   ({each})")


if __name__ == "__main__":
    main()
