"""Upstream faults under load: 429, 500, 503, timeouts, connection resets, streams cut midway
and in-stream error events, injected by the emulator while steady load runs through a gateway.

Every answer must be complete or an OpenAI-style error with a status that says whose fault it
is (the upstream's 429, or 502/503/504), never an empty 200, never a stream that stops without
`[DONE]` or an error event, and every request must end within a bound (the gateway's upstream
timeouts plus a margin): no hang. The router retries once and its circuit breaker is set so
that it does not open (every request meets the faulty upstream; the breaker has its own tests).
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections import Counter
from typing import Any

from reliability import load
from reliability.procs import MASTER_KEY, Stack, emulator_models
from reliability.scenario import Ctx, Result

UPSTREAM_TIMEOUT_S = 2.0
# One attempt, one retry after a backoff of at most 0.5 s, each at most the upstream timeout.
BOUND_S = 2 * UPSTREAM_TIMEOUT_S + 0.5 + 5.0
ALLOWED = {200, 429, 502, 503, 504}
# One of each, posted again and again while the load runs (see `inject`).
FAULTS: list[dict[str, Any]] = [
    {"kind": "status", "status": 429, "retry_after": 1},
    {"kind": "status", "status": 500},
    {"kind": "status", "status": 503},
    {"kind": "drop"},
    {"kind": "drop_mid_stream", "after_chunks": 2},
    {"kind": "error_event", "after_chunks": 1},
    {"kind": "delay", "seconds": UPSTREAM_TIMEOUT_S + 1.0},
]


def gateway_config(emulator_url: str) -> str:
    return f"""
gateway:
  master_key: {MASTER_KEY}
  log_level: error
  request_timeout_s: {UPSTREAM_TIMEOUT_S}
  stream_idle_timeout_s: {UPSTREAM_TIMEOUT_S}
router:
  retries: 1
  backoff_base_s: 0.05
  backoff_max_s: 0.5
  breaker: {{failures: 1000000, window_s: 1, cooldown_s: 1}}
{emulator_models(emulator_url)}
"""


def _post_faults(emulator_url: str, faults: list[dict[str, Any]]) -> None:
    data = json.dumps({"faults": faults}).encode()
    req = urllib.request.Request(  # noqa: S310 (127.0.0.1)
        f"{emulator_url}/_emulator/faults", data, {"content-type": "application/json"}
    )
    urllib.request.urlopen(req, timeout=5).close()  # noqa: S310


async def inject(emulator_url: str, stop: asyncio.Event, every_s: float) -> int:
    """Queue one fault of each kind every `every_s` seconds; returns how many were queued."""
    queued = 0
    while not stop.is_set():
        await asyncio.to_thread(_post_faults, emulator_url, FAULTS)
        queued += len(FAULTS)
        await asyncio.sleep(every_s)
    return queued


async def run(ctx: Ctx) -> Result:
    result = Result("upstream_faults")
    stack = Stack(ctx.workdir / "upstream_faults")
    try:
        emu = stack.emulator(chunk_delay=0.005)
        gw = stack.gateway("gateway", gateway_config(emu.url), wait=False)
        stack.ready(emu, gw)
        headers = {"authorization": f"Bearer {MASTER_KEY}"}
        tally = load.Tally()
        stop = asyncio.Event()
        duration = ctx.pick(10, 120)
        async with load.session() as http:

            async def send(i: int) -> load.Outcome:
                body = load.chat_body(i)
                return await load.request(http, gw.url, body, headers=headers, bound=BOUND_S)

            injector = asyncio.create_task(inject(emu.url, stop, 0.25))
            await load.drive(send, tally, concurrency=16, duration=duration, rate=100)
            stop.set()
            queued = await injector
        summary = tally.summary()
        unexpected = Counter(o.status for o in tally.outcomes if o.status not in ALLOWED)
        result.figures = {
            "seconds": duration,
            "faults_queued": queued,
            **summary,
            "bound_s": BOUND_S,
        }
        result.check(summary["requests"] > 0, "no requests were sent")
        result.check(summary["problems"] == 0, f"problems: {summary['problem_examples']}")
        result.check(
            summary["transport_errors"] == 0, "the gateway dropped connections to its client"
        )
        result.check(not unexpected, f"statuses outside {sorted(ALLOWED)}: {dict(unexpected)}")
        result.check(summary["ok"] > 0, "nothing succeeded between the faults")
        failed = summary["requests"] - summary["ok"]
        result.check(failed > 0, "no fault reached a client: the injection did not work")
        result.check(gw.proc.alive(), "the gateway died")
    finally:
        stack.close()
    return result
