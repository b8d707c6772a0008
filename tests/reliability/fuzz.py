"""Schema-driven fuzzing of the HTTP API from the gateway's own /openapi.json (schemathesis).

A real gateway process (master key, the emulator upstream) is fuzzed by `schemathesis run`
with these checks: no 5xx (`not_a_server_error`), every status code documented, every body
and content type matching the document (`status_code_conformance`, `content_type_conformance`,
`response_schema_conformance`, `response_headers_conformance`). The phases: the coverage
phase (boundary and negative cases, including requests without a credential), random
fuzzing and, in the full run, the examples and stateful phases. The seed is fixed, so a
failure reproduces (RELIABILITY_FUZZ_SEED picks another).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from reliability.metrics import requests_by_status, server_errors
from reliability.procs import MASTER_KEY, Stack, emulator_models
from reliability.scenario import Ctx, Result

CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance,response_headers_conformance"
)


def gateway_config(emulator_url: str) -> str:
    # RAG embeds with the emulator's model: the built-in local model takes tens of seconds to
    # load on a busy machine, which the fuzzer would report as a slow response, not a defect.
    return f"""
gateway:
  master_key: {MASTER_KEY}
  log_level: warning
router: {{retries: 0}}
rag: {{embedding_model: embed}}
{emulator_models(emulator_url)}
"""


def schemathesis_bin() -> str:
    return str(Path(sys.executable).with_name("schemathesis"))


async def run(ctx: Ctx) -> Result:
    result = Result("fuzz")
    stack = Stack(ctx.workdir / "fuzz")
    try:
        emu = stack.emulator()
        gw = stack.gateway("gateway", gateway_config(emu.url), wait=False)
        stack.ready(emu, gw)
        report = stack.workdir / "report.json"
        seed = os.environ.get("RELIABILITY_FUZZ_SEED", "18")
        examples = int(ctx.pick(3, 50))
        phases = "coverage,fuzzing" if ctx.short else "examples,coverage,fuzzing,stateful"
        # The short form fuzzes each operation once: the /ai twins of /v1 routes (the same
        # handlers under both prefixes) only in the full run.
        only_once = ["--exclude-path-regex", "^/ai/(?!analytics|feedback)"] if ctx.short else []
        args = [
            schemathesis_bin(),
            "run",
            f"{gw.url}/openapi.json",
            "--header",
            f"Authorization: Bearer {MASTER_KEY}",
            "--checks",
            CHECKS,
            "--phases",
            phases,
            "--max-examples",
            str(examples),
            "--seed",
            seed,
            # One worker: with threads, CPython 3.11's ast module can fail schemathesis's
            # generation ("AST constructor recursion depth mismatch", CPython gh-106905).
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--no-color",
            "--report",
            "json",
            "--report-json-path",
            str(report),
            *only_once,
        ]
        started = time.monotonic()
        with (stack.workdir / "schemathesis.log").open("wb") as log:
            # In the scenario's folder: schemathesis keeps a cache (.schemathesis/) where it runs.
            proc = await asyncio.create_subprocess_exec(
                *args, stdout=log, stderr=log, cwd=stack.workdir
            )
            try:
                await asyncio.wait_for(proc.wait(), timeout=ctx.pick(240, 3600))
            except TimeoutError:
                proc.kill()
                await proc.wait()
                result.check(False, "schemathesis did not finish in time")
        data: dict[str, Any] = json.loads(report.read_text()) if report.exists() else {}
        served = requests_by_status(gw.url)
        failures = {f["code"]: f["operations"] for f in data.get("failures", [])}
        # "Runtime Error" is schemathesis failing to generate a case (its own flakiness, e.g.
        # Hypothesis's "inconsistent results"); the others (network errors, timeouts) are the
        # gateway's.
        errors = [
            f"{e.get('title', '?')} x{e.get('count', 1)}"
            for e in data.get("errors", [])
            if e.get("title") != "Runtime Error"
        ]
        tool_errors = sum(
            e.get("count", 1) for e in data.get("errors", []) if e.get("title") == "Runtime Error"
        )
        cases = data.get("test_cases", {})
        result.figures = {
            "seed": seed,
            "phases": phases,
            "max_examples": examples,
            "seconds": round(time.monotonic() - started, 1),
            "operations_tested": data.get("operations", {}).get("tested"),
            "test_cases": cases.get("generated"),
            "gateway_requests": sum(served.values()),
            "gateway_5xx": server_errors(served),
            "gateway_statuses": dict(sorted(served.items())),
            "failures": failures,
            "errors": errors,
            "schemathesis_own_errors": tool_errors,
        }
        result.check(bool(data), f"no report (exit {proc.returncode}); see schemathesis.log")
        result.check(not failures, f"schemathesis failures: {failures}")
        result.check(not errors, f"schemathesis errors: {errors}")
        result.check(server_errors(served) == 0, f"the gateway answered 5xx: {dict(served)}")
        result.check(gw.proc.alive(), "the gateway died while fuzzed")
        result.notes.append(f"schemathesis log: {stack.workdir / 'schemathesis.log'}")
    finally:
        stack.close()
    return result
