"""A soak: steady load against one gateway process for 10 minutes (60 s in the short form),
with its resident memory (VmRSS from /proc) sampled every second.

The warm-up is the first quarter of the run, at full speed (no rate limit): pools, caches and
the allocator settle. The full run showed why it is needed: at 60 requests/s the process grows
by steps for about four minutes (117 MB to 144 MB), then stays flat to the last byte. After the
warm-up, at a steady 60 requests/s, every sample must stay within 5% of the warm-up's end (the
mean of the first samples after it), and the mean of the last tenth within 5% of it too: a
leak of a few hundred bytes a request shows as growth over the run. Every request must
succeed, with every check of `load.request`.
"""

from __future__ import annotations

import asyncio
import time

from reliability import load
from reliability.procs import MASTER_KEY, Proc, Stack, emulator_models
from reliability.scenario import Ctx, Result

LIMIT = 0.05


def gateway_config(emulator_url: str) -> str:
    return f"""
gateway:
  master_key: {MASTER_KEY}
  log_level: warning
{emulator_models(emulator_url)}
"""


async def sample(proc: Proc, samples: list[tuple[float, int]], stop: asyncio.Event) -> None:
    start = time.monotonic()
    while not stop.is_set():
        samples.append((time.monotonic() - start, proc.rss_kib()))
        await asyncio.sleep(1.0)


def _mean(values: list[int]) -> float:
    return sum(values) / len(values)


async def run(ctx: Ctx) -> Result:
    result = Result("soak")
    stack = Stack(ctx.workdir / "soak")
    try:
        emu = stack.emulator(chunk_delay=0.002)
        gw = stack.gateway("gateway", gateway_config(emu.url), wait=False)
        stack.ready(emu, gw)
        headers = {"authorization": f"Bearer {MASTER_KEY}"}
        duration = ctx.pick(60, 600)
        rate = 60.0
        tally = load.Tally()
        samples: list[tuple[float, int]] = []
        stop = asyncio.Event()
        async with load.session() as http:

            async def send(i: int) -> load.Outcome:
                body = load.chat_body(i)
                return await load.request(http, gw.url, body, headers=headers, bound=30)

            sampler = asyncio.create_task(sample(gw.proc, samples, stop))
            await load.drive(send, tally, concurrency=8, duration=duration / 4)
            warmup_requests = len(tally.outcomes)
            await load.drive(send, tally, concurrency=8, duration=duration * 3 / 4, rate=rate)
            stop.set()
            await sampler
        warm = duration / 4
        after = [rss for t, rss in samples if t >= warm]
        head = max(3, len(after) // 10)
        baseline = _mean(after[:head])
        end = _mean(after[-head:])
        summary = tally.summary()
        result.figures = {
            "seconds": duration,
            "target_rate_rps": rate,
            "warmup_requests": warmup_requests,
            "achieved_rps_after_warmup": round(
                (summary["requests"] - warmup_requests) / (duration * 3 / 4), 1
            ),
            **summary,
            "rss_start_kib": samples[0][1],
            "rss_after_warmup_kib": round(baseline),
            "rss_end_kib": round(end),
            "rss_min_after_warmup_kib": min(after),
            "rss_max_after_warmup_kib": max(after),
            "rss_end_growth_pct": round(100 * (end / baseline - 1), 2),
            "rss_max_deviation_pct": round(100 * max(abs(r / baseline - 1) for r in after), 2),
            "rss_samples": len(samples),
            "rss_every_10s_kib": [rss for t, rss in samples[::10]],
        }
        result.check(summary["problems"] == 0, f"problems: {summary['problem_examples']}")
        result.check(summary["ok"] == summary["requests"], f"not all succeeded: {summary}")
        result.check(
            abs(end / baseline - 1) <= LIMIT, f"RSS grew {100 * (end / baseline - 1):.1f}%"
        )
        result.check(
            all(abs(r / baseline - 1) <= LIMIT for r in after),
            "an RSS sample after the warm-up was more than 5% away from its end",
        )
        result.check(gw.proc.alive(), "the gateway died")
    finally:
        stack.close()
    return result
