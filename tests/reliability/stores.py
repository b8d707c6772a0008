"""Redis restarted and PostgreSQL unreachable under load, with two gateways side by side: one
with `security.rate_limits.redis_failure: fail_open` (the default), one with `fail_closed`.

Both have a model rate limit (so every request runs its check on Redis) and write analytics to
PostgreSQL through a fault proxy (`proxy.FaultProxy`), since the shared PostgreSQL must not be
stopped; Redis is a redis-server of the scenario's own, really restarted (its state is lost).

Timeline: steady load; Redis killed and started again after `redis_down` s; later PostgreSQL
cut for `pg_down` s (30 s in the full run) and restored; load continues, then stops.

As documented (docs/security.md, docs/configuration.md):
- `fail_open` answers every request, Redis or not, PostgreSQL or not;
- `fail_closed` answers 503 `service_unavailable` (OpenAI-style) only while Redis is away, and
  is not ready then; it serves again once Redis answers;
- a store outage delays analytics but loses none: after the outage every answered request
  (both gateways, every status) has exactly one usage row, and no row is extra.
Figures: requests, statuses, 503 window, readiness, rows written/lost/duplicated, and the
recovery times (Redis back to 200s on `fail_closed`; PostgreSQL back to every row written).
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections import Counter
from typing import Any

from reliability import load, pg
from reliability.procs import MASTER_KEY, Service, Stack, emulator_models, http_status
from reliability.proxy import FaultProxy
from reliability.scenario import Ctx, Result, Unavailable


def gateway_config(emulator_url: str, mode: str) -> str:
    return f"""
gateway:
  master_key: {MASTER_KEY}
  log_level: warning
security:
  rate_limits:
    models: {{fast: {{rps: 1000000, burst: 1000000}}}}
    redis_failure: {mode}
{emulator_models(emulator_url)}
"""


async def watch_ready(
    gateways: dict[str, Service], seen: list[tuple[float, str, int | None]], stop: asyncio.Event
) -> None:
    while not stop.is_set():
        for name, gw in gateways.items():
            status = await asyncio.to_thread(http_status, f"{gw.url}/health/ready", 2.0)
            seen.append((time.monotonic(), name, status))
        await asyncio.sleep(0.5)


async def wait_rows(url: str, expected: set[str], timeout: float) -> tuple[Counter[str], float]:
    start = time.monotonic()
    rows: Counter[str] = Counter()
    while time.monotonic() - start < timeout:
        rows = await pg.usage_ids(url)
        if expected <= set(rows):
            break
        await asyncio.sleep(0.5)
    return rows, time.monotonic() - start


async def run(ctx: Ctx) -> Result:
    result = Result("stores")
    stack = Stack(ctx.workdir / "stores")
    try:
        redis = stack.redis()
    except (RuntimeError, OSError) as exc:
        raise Unavailable(f"cannot start redis-server: {exc}") from exc
    try:
        async with pg.throwaway_database() as database:
            proxy = FaultProxy(pg.target_port())
            await proxy.start()
            try:
                await _scenario(ctx, stack, redis, database, proxy, result)
            finally:
                # The gateways go (flushing through the proxy, on this loop) before their
                # database is dropped.
                await asyncio.to_thread(stack.close)
                await proxy.close()
    finally:
        stack.close()
    return result


async def _scenario(
    ctx: Ctx, stack: Stack, redis: Service, database: str, proxy: FaultProxy, result: Result
) -> None:
    emu = stack.emulator()
    env = {
        "AI_GATEWAY_REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
        "AI_GATEWAY_REDIS_PREFIX": f"reliability-{uuid.uuid4().hex[:8]}",
        "AI_GATEWAY_DATABASE_URL": pg.via_port(database, proxy.port),
    }
    gateways = {
        mode: stack.gateway(mode, gateway_config(emu.url, mode), env, wait=False)
        for mode in ("fail_open", "fail_closed")
    }
    # In a thread: this loop runs the proxy that the gateways reach PostgreSQL through.
    await asyncio.to_thread(stack.ready, emu, *gateways.values())
    before, redis_down, between, pg_down, after = (
        (3.0, 2.0, 2.0, 5.0, 2.0) if ctx.short else (20.0, 5.0, 15.0, 30.0, 20.0)
    )
    tallies = {mode: load.Tally() for mode in gateways}
    ready: list[tuple[float, str, int | None]] = []
    stop = asyncio.Event()
    marks: dict[str, float] = {}
    headers = {"authorization": f"Bearer {MASTER_KEY}"}

    async def faults() -> None:
        await asyncio.sleep(before)
        marks["redis_down"] = time.monotonic()
        redis.proc.signal(signal.SIGKILL)
        await asyncio.to_thread(redis.proc.wait, 5)
        await asyncio.sleep(redis_down)
        restarted = await asyncio.to_thread(stack.redis, redis.port)
        redis.proc = restarted.proc
        marks["redis_up"] = time.monotonic()
        await asyncio.sleep(between)
        marks["pg_down"] = time.monotonic()
        await proxy.cut()
        await asyncio.sleep(pg_down)
        await proxy.restore()
        marks["pg_up"] = time.monotonic()
        # Recovery: until every request answered before PostgreSQL came back has its row.
        pending = {
            o.request_id for t in tallies.values() for o in t.outcomes if o.request_id and o.status
        }
        rows, waited = await wait_rows(database, pending, timeout=ctx.pick(60, 180))
        marks["pg_recovered"] = marks["pg_up"] + waited if pending <= set(rows) else -1.0
        await asyncio.sleep(max(0.0, after - waited))
        stop.set()

    async with load.session() as http:

        def sender(gw: Service) -> Any:
            async def send(i: int) -> load.Outcome:
                body = load.chat_body(i, stream_every=3)
                return await load.request(http, gw.url, body, headers=headers, bound=30)

            return send

        watcher = asyncio.create_task(watch_ready(gateways, ready, stop))
        await asyncio.gather(
            faults(),
            *(
                load.drive(
                    sender(gw), tallies[mode], concurrency=4, duration=3600, rate=40, stop=stop
                )
                for mode, gw in gateways.items()
            ),
        )
        await watcher

    answered = {rid for t in tallies.values() for rid in t.answered_ids()}
    rows, waited = await wait_rows(database, answered, timeout=ctx.pick(60, 180))
    lost = answered - set(rows)
    extra = set(rows) - answered
    duplicated = sum(n - 1 for n in rows.values() if n > 1)

    open_t, closed_t = tallies["fail_open"], tallies["fail_closed"]
    refused = [o for o in closed_t.outcomes if o.status == 503]
    last_refused_end = max((o.started + o.seconds for o in refused), default=None)
    # Seconds after Redis listened again until fail_closed stopped refusing (0: at once).
    redis_recovery = (
        max(0.0, round(last_refused_end - marks["redis_up"], 2)) if last_refused_end else 0.0
    )
    unready = sorted(
        {round(t - marks["redis_down"], 1) for t, m, s in ready if m == "fail_closed" and s == 503}
    )
    open_unready = sum(1 for _, m, s in ready if m == "fail_open" and s != 200)
    result.figures = {
        "redis_down_s": redis_down,
        "pg_unreachable_s": pg_down,
        "fail_open": open_t.summary(),
        "fail_closed": closed_t.summary(),
        "fail_closed_503s": len(refused),
        "fail_closed_503_window_s": [
            round(min(o.started for o in refused) - marks["redis_down"], 2),
            round(last_refused_end - marks["redis_down"], 2),
        ]
        if refused
        else None,
        "redis_recovery_s": redis_recovery,
        "fail_closed_unready_probes": len(unready),
        "fail_open_unready_probes": open_unready,
        "answered": len(answered),
        "usage_rows": sum(rows.values()),
        "rows_lost": len(lost),
        "rows_duplicated": duplicated,
        "rows_extra": len(extra),
        "pg_recovery_s": round(marks["pg_recovered"] - marks["pg_up"], 2)
        if marks["pg_recovered"] > 0
        else None,
        "rows_complete_after_load_s": round(waited, 2),
    }
    o_sum = open_t.summary()
    result.check(o_sum["problems"] == 0, f"fail_open problems: {o_sum['problem_examples']}")
    result.check(o_sum["ok"] == o_sum["requests"], f"fail_open refused requests: {o_sum}")
    c_sum = closed_t.summary()
    result.check(c_sum["problems"] == 0, f"fail_closed problems: {c_sum['problem_examples']}")
    others = Counter(o.status for o in closed_t.outcomes if o.status not in (200, 503))
    result.check(not others, f"fail_closed answered other statuses: {dict(others)}")
    result.check(
        all(o.error_code == "service_unavailable" for o in refused),
        f"fail_closed 503 codes: {Counter(o.error_code for o in refused)}",
    )
    result.check(bool(refused), "fail_closed never refused while Redis was down")
    outside = [
        o
        for o in refused
        if o.started + o.seconds < marks["redis_down"] or o.started > marks["redis_up"] + 5.0
    ]
    result.check(not outside, f"fail_closed refused {len(outside)} outside Redis's outage")
    result.check(bool(unready), "fail_closed was never unready while Redis was down")
    result.check(open_unready == 0, "fail_open went unready")
    result.check(marks["pg_recovered"] > 0, "rows of the outage not all written after it")
    result.check(not lost, f"{len(lost)} usage rows lost (e.g. {sorted(lost)[:3]})")
    result.check(duplicated == 0, f"{duplicated} usage rows duplicated")
    result.check(not extra, f"{len(extra)} usage rows for requests no client got an answer to")
    for mode, gw in gateways.items():
        result.check(gw.proc.alive(), f"{mode} died")
