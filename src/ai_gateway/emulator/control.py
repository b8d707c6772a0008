"""Control endpoints under ``/_emulator`` for tests: faults, the request log, statistics.

* ``POST /_emulator/faults`` ``{"faults": [...]}`` queues faults (see :mod:`faults`);
  ``GET`` lists the pending ones, ``DELETE`` clears them.
* ``GET /_emulator/requests?limit=N`` returns the last N requests received by the provider
  endpoints (method, path, query, headers, parsed JSON body), newest last;
  ``DELETE`` clears the log.
* ``GET /_emulator/stats`` returns, per provider and model, the requests answered, the
  tokens served and the errors by status (see :class:`state.ModelStats`); ``DELETE`` resets.
* ``DELETE /_emulator/prompt-cache`` forgets the prefixes of Anthropic's emulated prompt
  cache (see :mod:`anthropic_cache`).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ai_gateway.emulator.faults import FaultSpecError, parse_fault
from ai_gateway.emulator.state import state_of


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error": {"message": message}}, status=400)


async def add_faults(request: web.Request) -> web.Response:
    try:
        body: Any = await request.json()
    except ValueError:
        return _bad_request("body must be JSON")
    specs = body.get("faults") if isinstance(body, dict) else None
    if not isinstance(specs, list):
        return _bad_request("body must be an object with a 'faults' array")
    try:
        faults = [parse_fault(spec) for spec in specs]
    except FaultSpecError as exc:
        return _bad_request(str(exc))
    queue = state_of(request).faults
    queue.add(faults)
    return web.json_response({"queued": len(faults), "pending": queue.pending()})


async def list_faults(request: web.Request) -> web.Response:
    return web.json_response({"pending": state_of(request).faults.pending()})


async def clear_faults(request: web.Request) -> web.Response:
    return web.json_response({"cleared": state_of(request).faults.clear()})


async def list_requests(request: web.Request) -> web.Response:
    raw = request.query.get("limit")
    if raw is not None and not raw.isdigit():
        return _bad_request("limit must be a non-negative integer")
    entries = state_of(request).requests.last(int(raw) if raw is not None else None)
    return web.json_response({"requests": entries})


async def clear_requests(request: web.Request) -> web.Response:
    return web.json_response({"cleared": state_of(request).requests.clear()})


async def stats(request: web.Request) -> web.Response:
    return web.json_response({"providers": state_of(request).stats.snapshot()})


async def clear_stats(request: web.Request) -> web.Response:
    state_of(request).stats.clear()
    return web.json_response({"cleared": True})


async def clear_prompt_cache(request: web.Request) -> web.Response:
    return web.json_response({"cleared": state_of(request).prompt_cache.clear()})


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_post("/_emulator/faults", add_faults)
    router.add_get("/_emulator/faults", list_faults)
    router.add_delete("/_emulator/faults", clear_faults)
    router.add_get("/_emulator/requests", list_requests)
    router.add_delete("/_emulator/requests", clear_requests)
    router.add_get("/_emulator/stats", stats)
    router.add_delete("/_emulator/stats", clear_stats)
    router.add_delete("/_emulator/prompt-cache", clear_prompt_cache)
