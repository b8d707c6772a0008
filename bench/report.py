"""Turn measurements into ratios, a printed table and a JSON document."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.load import Measurement

TARGETS = ("direct", "passthrough", "gateway")
TARGET_RPS = 3000.0
TARGET_ADDED_P50_US = 500.0
PACKAGES = ("starlette", "uvicorn", "uvloop", "httptools", "aiohttp", "httpx", "orjson")


@dataclass(frozen=True)
class TargetResult:
    """One target's figures: throughput at N connections and latency at concurrency 1."""

    throughput: Measurement | None = None
    latency: Measurement | None = None
    error: str | None = None


def median_measurement(runs: list[Measurement]) -> Measurement:
    """Field-by-field median of repeated measurements (the figures that are reported)."""
    first = runs[0]
    return replace(
        first,
        duration_s=statistics.median(m.duration_s for m in runs),
        requests=round(statistics.median(m.requests for m in runs)),
        rps=statistics.median(m.rps for m in runs),
        p50_us=statistics.median(m.p50_us for m in runs),
        p90_us=statistics.median(m.p90_us for m in runs),
        p99_us=statistics.median(m.p99_us for m in runs),
        mean_us=statistics.median(m.mean_us for m in runs),
        max_us=max(m.max_us for m in runs),
        errors=sum(m.errors for m in runs),
    )


def combine(rounds: list[TargetResult]) -> TargetResult:
    """One result from repeated rounds: the first error, else the medians."""
    if not rounds:
        return TargetResult(error="not measured")
    for res in rounds:
        if res.error or not res.throughput or not res.latency:
            return res
    return TargetResult(
        throughput=median_measurement([r.throughput for r in rounds if r.throughput]),
        latency=median_measurement([r.latency for r in rounds if r.latency]),
    )


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or not den:
        return None
    return round(num / den, 3)


def _diff(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return round(a - b, 1)


def comparisons(results: dict[str, TargetResult]) -> dict[str, Any]:
    """Throughput ratios and added latency for each pair (subject, baseline) that was measured."""

    def rps(name: str) -> float | None:
        res = results.get(name)
        return res.throughput.rps if res and res.throughput else None

    def lat(name: str, field: str) -> float | None:
        res = results.get(name)
        return float(getattr(res.latency, field)) if res and res.latency else None

    out: dict[str, Any] = {}
    for subject, baseline in (
        ("gateway", "passthrough"),
        ("gateway", "direct"),
        ("passthrough", "direct"),
    ):
        if rps(subject) is None or rps(baseline) is None:
            continue
        out[f"{subject}_vs_{baseline}"] = {
            "throughput_ratio": _ratio(rps(subject), rps(baseline)),
            "c1_rps_ratio": _ratio(lat(subject, "rps"), lat(baseline, "rps")),
            "added_p50_us_c1": _diff(lat(subject, "p50_us"), lat(baseline, "p50_us")),
            "added_p99_us_c1": _diff(lat(subject, "p99_us"), lat(baseline, "p99_us")),
        }
    return out


def target_check(results: dict[str, TargetResult]) -> dict[str, Any] | None:
    """The goal for the gateway: >= 3,000 req/s and <= 0.5 ms added p50 at concurrency 1."""
    gateway, direct = results.get("gateway"), results.get("direct")
    if not gateway or not gateway.throughput or not gateway.latency:
        return None
    rps = gateway.throughput.rps
    check: dict[str, Any] = {
        "rps": round(rps, 1),
        "rps_goal": TARGET_RPS,
        "rps_ok": rps >= TARGET_RPS,
    }
    if direct and direct.latency:
        added = gateway.latency.p50_us - direct.latency.p50_us
        check |= {
            "added_p50_us_vs_direct": round(added, 1),
            "added_p50_goal_us": TARGET_ADDED_P50_US,
            "added_p50_ok": added <= TARGET_ADDED_P50_US,
        }
    return check


def _fmt_us(us: float) -> str:
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} us"


def render(results: dict[str, TargetResult], connections: int) -> str:
    """The human-readable table."""
    head = (
        f"{'target':<12} {f'req/s @{connections}':>12} {'p50':>9} {'p99':>9}   "
        f"{'req/s @1':>9} {'p50 @1':>9} {'p99 @1':>9}  errors"
    )
    lines = [head, "-" * len(head)]
    for name in TARGETS:
        res = results.get(name)
        if res is None:
            continue
        if res.error or not res.throughput or not res.latency:
            lines.append(f"{name:<12} not measured: {(res.error or '?').splitlines()[0]}")
            continue
        t, c1 = res.throughput, res.latency
        lines.append(
            f"{name:<12} {t.rps:>12,.0f} {_fmt_us(t.p50_us):>9} {_fmt_us(t.p99_us):>9}   "
            f"{c1.rps:>9,.0f} {_fmt_us(c1.p50_us):>9} {_fmt_us(c1.p99_us):>9}  "
            f"{t.errors + c1.errors}"
        )
    for key, comp in comparisons(results).items():
        subject, baseline = key.split("_vs_")
        lines.append(
            f"{subject} / {baseline}: throughput x{comp['throughput_ratio']}, "
            f"req/s @1 x{comp['c1_rps_ratio']}, added p50 @1 {comp['added_p50_us_c1']:+.0f} us, "
            f"added p99 @1 {comp['added_p99_us_c1']:+.0f} us"
        )
    check = target_check(results)
    if check:
        verdict = "PASS" if check["rps_ok"] else "FAIL"
        text = f"goal: gateway >= {TARGET_RPS:,.0f} req/s: {verdict} ({check['rps']:,.0f})"
        if "added_p50_ok" in check:
            verdict = "PASS" if check["added_p50_ok"] else "FAIL"
            text += (
                f"; added p50 @1 vs direct <= {TARGET_ADDED_P50_US:.0f} us: {verdict} "
                f"({check['added_p50_us_vs_direct']:+.0f} us)"
            )
        lines.append(text)
    return "\n".join(lines)


def _git(repo: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def _git_commit(repo: Path) -> str | None:
    """The commit measured, with ``-dirty`` when src/ has uncommitted changes."""
    commit = _git(repo, "rev-parse", "--short", "HEAD")
    if commit and _git(repo, "status", "--porcelain", "--", "src"):
        commit += "-dirty"
    return commit


def machine_info(repo: Path) -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for name in (*PACKAGES, "devmentor-ai-gateway"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpus": os.cpu_count(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "cpu_model": cpu,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "packages": versions,
        "git_commit": _git_commit(repo),
    }


def document(
    rounds: dict[str, list[TargetResult]], settings: dict[str, Any], repo: Path
) -> dict[str, Any]:
    """The JSON document written to bench/results/ (medians, and every round)."""
    results = {name: combine(runs) for name, runs in rounds.items()}
    return {
        "settings": settings,
        "machine": machine_info(repo),
        "results": {name: asdict(res) for name, res in results.items()},
        "rounds": {name: [asdict(r) for r in runs] for name, runs in rounds.items()},
        "comparisons": comparisons(results),
        "goal": target_check(results),
    }
