"""Run the reliability suite: `python -m reliability.run [--short] [--only NAME[,NAME]]`
(`scripts/reliability` runs it from the checkout). Prints each scenario's figures and verdict,
writes them all as JSON (--output), and exits 1 if a scenario failed."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from reliability import cluster, fuzz, soak, stores, upstream_faults
from reliability.scenario import Ctx, Result, Unavailable

Scenario = Callable[[Ctx], Awaitable[Result]]
SCENARIOS: dict[str, Scenario] = {
    "fuzz": fuzz.run,
    "upstream_faults": upstream_faults.run,
    "soak": soak.run,
    "stores": stores.run,
    "cluster_kill": cluster.run_kill,
    "cluster_sigterm": cluster.run_sigterm,
}


async def run_one(name: str, ctx: Ctx) -> Result:
    try:
        return await SCENARIOS[name](ctx)
    except Unavailable as exc:
        return Result(name, passed=True, skipped=str(exc))
    except Exception as exc:  # a scenario that could not run is a failed one, with its reason
        failed = Result(name, passed=False)
        failed.failures.append(f"{type(exc).__name__}: {exc}")
        failed.notes.append(traceback.format_exc())
        return failed


def render(result: Result) -> str:
    verdict = "SKIP" if result.skipped else ("PASS" if result.passed else "FAIL")
    lines = [f"== {result.name}: {verdict}" + (f" ({result.skipped})" if result.skipped else "")]
    lines += [f"   {k}: {json.dumps(v, default=str)}" for k, v in result.figures.items()]
    lines += [f"   FAILED: {failure}" for failure in result.failures]
    lines += [f"   note: {note}" for note in result.notes]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/reliability", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--short", action="store_true", help="the short form (CI's durations)")
    parser.add_argument("--only", default="", help=f"comma-separated: {', '.join(SCENARIOS)}")
    parser.add_argument("--output", type=Path, help="JSON results (default: under the workdir)")
    parser.add_argument("--workdir", type=Path, help="logs and data (default: a new temp dir)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ai-gateway-reliability-"))
    ctx = Ctx(short=args.short, workdir=workdir)
    started = datetime.now(UTC)
    print(f"reliability suite ({'short' if args.short else 'full'}), logs in {workdir}", flush=True)
    results = []
    for name in names:
        t0 = time.monotonic()
        result = asyncio.run(run_one(name, ctx))
        result.figures.setdefault("scenario_seconds", round(time.monotonic() - t0, 1))
        results.append(result)
        print(render(result), flush=True)
    output = args.output or workdir / "results.json"
    output.write_text(
        json.dumps(
            {
                "started": started.isoformat(),
                "form": "short" if args.short else "full",
                "command": " ".join(["scripts/reliability", *sys.argv[1:]]),
                "results": [r.as_dict() for r in results],
            },
            indent=2,
            default=str,
        )
    )
    failed = [r.name for r in results if not r.passed]
    print(f"results: {output}; " + (f"FAILED: {', '.join(failed)}" if failed else "all passed"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
