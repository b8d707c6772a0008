"""The faults a service emulator can be told to suffer, its request log, and the middleware and
control endpoints that apply and set them.

Faults hold until changed (unlike the provider emulator's queue of one-shot faults): a service
that is slow or down stays so, which is what a circuit breaker has to cope with.

* ``GET /_emulator/faults`` the current faults; ``PUT`` sets the fields given (others keep their
  value); ``DELETE`` clears them all. Fields: ``latency_s`` (seconds before answering),
  ``status`` (answer this HTTP status, an error body), ``down`` (close the connection without
  answering), ``malformed`` (``"json"``: a body that is not JSON; ``"shape"``: JSON of the wrong
  shape).
* ``GET /_emulator/requests`` the requests received by the service endpoints (method, path,
  headers, body, and when each was received and answered, as Unix times); ``DELETE`` clears.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from aiohttp import web

Malformed = Literal["json", "shape"]
CONTROL_PREFIX = "/_emulator/"
REQUEST_LOG_SIZE = 1000


class FaultSpecError(ValueError):
    """Faults that cannot be set."""


@dataclass(frozen=True)
class ServiceFaults:
    latency_s: float = 0.0
    status: int | None = None
    down: bool = False
    malformed: Malformed | None = None

    def updated(self, spec: Any) -> ServiceFaults:
        """These faults with the fields of `spec` (a JSON object) changed."""
        if not isinstance(spec, dict):
            raise FaultSpecError("body must be a JSON object")
        unknown = set(spec) - {f.name for f in fields(self)}
        if unknown:
            raise FaultSpecError(f"unknown fields: {', '.join(sorted(unknown))}")
        latency = spec.get("latency_s", self.latency_s)
        if isinstance(latency, bool) or not isinstance(latency, int | float) or latency < 0:
            raise FaultSpecError("'latency_s' must be a number >= 0")
        status = spec.get("status", self.status)
        if status is not None and (
            isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599
        ):
            raise FaultSpecError("'status' must be null or an integer between 200 and 599")
        down = spec.get("down", self.down)
        if not isinstance(down, bool):
            raise FaultSpecError("'down' must be true or false")
        malformed = spec.get("malformed", self.malformed)
        if malformed not in (None, "json", "shape"):
            raise FaultSpecError("'malformed' must be null, 'json' or 'shape'")
        return replace(
            self, latency_s=float(latency), status=status, down=down, malformed=malformed
        )


@dataclass
class ServiceState:
    """Everything one service emulator holds; it lives on its app (nothing module-level)."""

    name: str
    faults: ServiceFaults
    tokens: frozenset[str]  # accepted bearer tokens; empty: no authentication
    data: Any  # the service's seeded store (see data.py)
    log: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=REQUEST_LOG_SIZE))
    seq: int = 0


STATE_KEY = web.AppKey("service_state", ServiceState)


def state_of(request: web.Request) -> ServiceState:
    return request.app[STATE_KEY]


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"status": status, "message": message}}, status=status)


def _drop(request: web.Request) -> web.StreamResponse:
    """Close the connection without answering; aiohttp's later attempt to answer fails quietly."""
    if request.transport is not None:
        request.transport.close()
    return web.StreamResponse(status=500)


def _authorized(state: ServiceState, request: web.Request) -> bool:
    if not state.tokens:
        return True
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and token in state.tokens


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def apply_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Log, delay, authenticate and misbehave as told, for every service endpoint."""
    if request.path.startswith(CONTROL_PREFIX):
        return await handler(request)
    state = state_of(request)
    raw = await request.read()
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode(errors="replace")
    state.seq += 1
    entry: dict[str, Any] = {
        "seq": state.seq,
        "method": request.method,
        "path": request.path,
        "headers": dict(request.headers),
        "body": body,
        "received": time.time(),
        "answered": None,
    }
    state.log.append(entry)
    faults = state.faults  # as they were when the request came in
    try:
        if faults.latency_s:
            await asyncio.sleep(faults.latency_s)
        if faults.down:
            return _drop(request)
        if not _authorized(state, request):
            return error(401, "missing or unknown bearer token")
        if faults.status is not None:
            return error(faults.status, f"fault: status {faults.status}")
        if faults.malformed == "json":
            return web.Response(text='{"memories": [', content_type="application/json")
        if faults.malformed == "shape":
            return web.json_response({"unexpected": True, "items": "none"})
        return await handler(request)
    finally:
        entry["answered"] = time.time()


async def _get_faults(request: web.Request) -> web.Response:
    return web.json_response(asdict(state_of(request).faults))


async def _put_faults(request: web.Request) -> web.Response:
    state = state_of(request)
    try:
        state.faults = state.faults.updated(await request.json())
    except ValueError as exc:  # FaultSpecError, or a body that is not JSON
        return error(400, str(exc) if isinstance(exc, FaultSpecError) else "body must be JSON")
    return web.json_response(asdict(state.faults))


async def _clear_faults(request: web.Request) -> web.Response:
    state = state_of(request)
    state.faults = ServiceFaults()
    return web.json_response(asdict(state.faults))


async def _list_requests(request: web.Request) -> web.Response:
    return web.json_response({"requests": list(state_of(request).log)})


async def _clear_requests(request: web.Request) -> web.Response:
    log = state_of(request).log
    cleared = len(log)
    log.clear()
    return web.json_response({"cleared": cleared})


def add_control_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/_emulator/faults", _get_faults)
    router.add_put("/_emulator/faults", _put_faults)
    router.add_delete("/_emulator/faults", _clear_faults)
    router.add_get("/_emulator/requests", _list_requests)
    router.add_delete("/_emulator/requests", _clear_requests)
