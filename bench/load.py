"""Run one load measurement with wrk (preferred) or the Python generator, as a subprocess.

Both paths return the same ``Measurement``. Each measurement is preceded by a warm-up run at the
same concurrency whose figures are discarded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.procs import pinned

LUA_SCRIPT = Path(__file__).with_name("wrk_post.lua")
RESULT_PREFIX = "BENCH_RESULT "


class LoadError(RuntimeError):
    """The load generator failed or printed no result."""


@dataclass(frozen=True)
class Measurement:
    tool: str
    connections: int
    duration_s: float
    requests: int
    rps: float
    p50_us: float
    p90_us: float
    p99_us: float
    mean_us: float
    max_us: float
    errors: int


@dataclass(frozen=True)
class LoadSpec:
    """How to generate load; the same for every target in a run."""

    tool: str  # "wrk" or "python"
    body: str
    cpus: set[int] | None  # CPUs the generator is pinned to (None: not pinned)
    warmup_s: float
    auth: str | None = None  # a bearer credential sent with every request (BENCH_AUTH)


def pick_tool(requested: str) -> str:
    """``wrk`` when asked for or when ``auto`` and installed, else ``python``."""
    if requested == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    if requested == "wrk" and shutil.which("wrk") is None:
        raise LoadError("wrk was requested but is not installed (run scripts/bench to install it)")
    return requested


def tool_version(tool: str) -> str:
    if tool != "wrk":
        return f"bench.loadgen (aiohttp, Python {sys.version.split()[0]})"
    proc = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    first = (proc.stdout or proc.stderr).strip().splitlines()
    return first[0].split(" Copyright")[0] if first else "wrk"


def _run(argv: list[str], env: dict[str, str], timeout: float) -> str:
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise LoadError(f"{argv[0]} did not finish within {timeout:.0f}s") from exc
    if proc.returncode != 0:
        raise LoadError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def _auth_env(spec: LoadSpec) -> dict[str, str]:
    return {"BENCH_AUTH": spec.auth} if spec.auth else {}


def _wrk(spec: LoadSpec, url: str, connections: int, duration: float) -> Measurement:
    threads = 1 if spec.cpus and len(spec.cpus) == 1 else min(connections, os.cpu_count() or 1)
    seconds = max(1, round(duration))
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA_SCRIPT),
        url,
    ]
    env = {**os.environ, "BENCH_BODY": spec.body, **_auth_env(spec)}
    out = _run(pinned(argv, spec.cpus), env, timeout=seconds + 60)
    line = next((ln for ln in out.splitlines() if ln.startswith(RESULT_PREFIX)), None)
    if line is None:
        raise LoadError(f"wrk printed no result:\n{out}")
    raw = json.loads(line[len(RESULT_PREFIX) :])
    errors = sum(raw[k] for k in raw if k.startswith("errors_"))
    duration_s = raw["duration_us"] / 1e6
    ok = max(0, raw["requests"] - raw["errors_status"])
    return Measurement(
        tool="wrk",
        connections=connections,
        duration_s=duration_s,
        requests=raw["requests"],
        rps=ok / duration_s if duration_s else 0.0,
        p50_us=float(raw["p50_us"]),
        p90_us=float(raw["p90_us"]),
        p99_us=float(raw["p99_us"]),
        mean_us=float(raw["mean_us"]),
        max_us=float(raw["max_us"]),
        errors=errors,
    )


def _python(spec: LoadSpec, url: str, connections: int, duration: float) -> Measurement:
    argv = [
        sys.executable,
        "-m",
        "bench.loadgen",
        "--url",
        url,
        "--connections",
        str(connections),
        "--duration",
        str(duration),
        "--warmup",
        "0",
        "--body",
        spec.body,
    ]
    out = _run(pinned(argv, spec.cpus), {**os.environ, **_auth_env(spec)}, timeout=duration + 60)
    lines = out.strip().splitlines()
    if not lines:
        raise LoadError("bench.loadgen printed no result")
    raw = json.loads(lines[-1])
    return Measurement(
        tool="python",
        connections=connections,
        duration_s=raw["duration_s"],
        requests=raw["requests"],
        rps=raw["rps"],
        p50_us=raw["p50_us"],
        p90_us=raw["p90_us"],
        p99_us=raw["p99_us"],
        mean_us=raw["mean_us"],
        max_us=raw["max_us"],
        errors=raw["errors"],
    )


def measure(spec: LoadSpec, url: str, connections: int, duration: float) -> Measurement:
    """Warm up (discarded), then measure ``url`` at ``connections`` for ``duration`` s."""
    run = _wrk if spec.tool == "wrk" else _python
    if spec.warmup_s > 0:
        run(spec, url, connections, spec.warmup_s)
    return run(spec, url, connections, duration)
