"""The Qdrant server emulator as an aiohttp application: Qdrant's REST routes (handlers.py) on
one port, each answer in Qdrant's envelope (`{"result": ..., "status": "ok", "time": s}`), each
error in its error shape (`{"status": {"error": "..."}, "time": s}`) with its status code, and
its `api-key` (or `Authorization: Bearer`) check when keys are configured.

Behind the routes is qdrant-client's local mode, in memory or in a folder (which it locks to
this process). Its calls do their work without yielding to the event loop, so requests are
applied one at a time, in the order they arrive: one emulator can serve several gateways.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hmac
import importlib.metadata
import os
import signal
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic_core import to_jsonable_python
from qdrant_client import AsyncQdrantClient

from ai_gateway.emulator.qdrant.handlers import (
    CLIENT_KEY,
    ROUTES,
    ConflictError,
    FormatError,
    Handler,
    NotFoundError,
)

MAX_BODY_BYTES = 64 * 1024 * 1024
SHUTDOWN_TIMEOUT_S = 1.0
DEFAULT_PORT = 6333
# Probes that Qdrant answers without a key, as plain text.
_PROBES = {"/healthz": "healthz check passed", "/livez": "livez check passed"}
_READY = "all shards are ready"


@dataclass(frozen=True)
class QdrantEmulatorSettings:
    """`path`: the folder that holds the collections (None: in memory, gone when it stops).
    `api_keys`: the keys it accepts (empty: it asks for none)."""

    path: str | None = None
    api_keys: frozenset[str] = frozenset()


SETTINGS_KEY = web.AppKey("qdrant_settings", QdrantEmulatorSettings)
LOCK_KEY = web.AppKey("qdrant_folder_lock", int)


class FolderInUseError(RuntimeError):
    """Another emulator serves the folder."""


def _hold(folder: str) -> int:
    """A lock on `folder` for this emulator, taken before local mode opens it: local mode takes
    its own too, but leaks its lock file's handle when that fails."""
    os.makedirs(folder, exist_ok=True)
    fd = os.open(os.path.join(folder, ".emulator.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise FolderInUseError(
            f"{folder} is already served by another Qdrant emulator: stop it, or give this one "
            "another --qdrant-path"
        ) from None
    return fd


def _envelope(result: Any, started: float) -> web.Response:
    body = {"result": to_jsonable_python(result), "status": "ok", "time": _since(started)}
    return web.json_response(body)


def _error(status: int, message: str, started: float) -> web.Response:
    body = {"status": {"error": message}, "time": _since(started)}
    return web.json_response(body, status=status)


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 6)


def _endpoint(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def respond(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        await request.read()  # now: what follows runs without yielding (see the module's doc)
        # Local mode warns that payload indexes do nothing and that search is exact: true of
        # the emulator, and nothing its clients could act on.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = await handler(request)
        return _envelope(result, started)

    return respond


def _authorized(request: web.Request, keys: frozenset[str]) -> str | None:
    """None when the request may go on, else why not."""
    given = request.headers.get("api-key")
    if given is None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        given = token if scheme.lower() == "bearer" and token else None
    if given is None:
        return "Must provide an API key or an Authorization bearer token"
    if not any(hmac.compare_digest(given.encode(), key.encode()) for key in keys):
        return "Invalid API key or JWT"
    return None


@web.middleware
async def _qdrant_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    started = time.perf_counter()
    settings = request.app[SETTINGS_KEY]
    if settings.api_keys and request.path not in _PROBES and request.path != "/readyz":
        refused = _authorized(request, settings.api_keys)
        if refused is not None:
            status = 401 if refused.startswith("Must") else 403
            return _error(status, refused, started)
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return _error(404, f"Not found: no endpoint {request.method} {request.path}", started)
    except web.HTTPMethodNotAllowed:
        return _error(405, f"Method {request.method} not allowed on {request.path}", started)
    except web.HTTPRequestEntityTooLarge as exc:
        return _error(413, f"Payload too large: {exc.text}", started)
    except NotFoundError as exc:
        return _error(404, f"Not found: {exc}", started)
    except FormatError as exc:
        return _error(400, f"Format error in JSON body: {exc}", started)
    except ConflictError as exc:
        return _error(409, f"Wrong input: {exc}", started)
    except (ValueError, TypeError, AssertionError) as exc:  # local mode's refusals
        return _error(400, f"Bad request: {exc}", started)


async def _root(request: web.Request) -> web.Response:
    # Not enveloped, as Qdrant's own root: the version qdrant-client's compatibility check reads.
    version = importlib.metadata.version("qdrant-client")
    return web.json_response({"title": "qdrant - vector search engine", "version": version})


async def _probe(request: web.Request) -> web.Response:
    return web.Response(text=_PROBES.get(request.path, _READY))


def create_app(settings: QdrantEmulatorSettings | None = None) -> web.Application:
    """The emulator; its collections live in the local-mode client on the app (closed with
    it)."""
    settings = settings or QdrantEmulatorSettings()
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[_qdrant_errors])
    app[SETTINGS_KEY] = settings
    if settings.path is None:
        app[CLIENT_KEY] = AsyncQdrantClient(location=":memory:")
    else:
        app[LOCK_KEY] = _hold(settings.path)
        try:
            app[CLIENT_KEY] = AsyncQdrantClient(path=settings.path)
        except BaseException:
            os.close(app[LOCK_KEY])
            raise

    async def close(app: web.Application) -> None:
        await app[CLIENT_KEY].close()
        if LOCK_KEY in app:
            os.close(app[LOCK_KEY])  # releases the lock

    app.on_cleanup.append(close)
    app.router.add_get("/", _root)
    for probe in (*_PROBES, "/readyz"):
        app.router.add_get(probe, _probe)
    for route in ROUTES:
        app.router.add_route(route.method, route.path, _endpoint(route.handler))
    return app


async def start(
    settings: QdrantEmulatorSettings | None = None, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, int]:
    """Start serving; returns the runner (call `await runner.cleanup()`) and the port."""
    runner = web.AppRunner(
        create_app(settings), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, int(runner.addresses[0][1])


async def _serve_forever(settings: QdrantEmulatorSettings, host: str, port: int) -> None:
    stop = asyncio.Event()
    with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows loops
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    runner, bound = await start(settings, host, port)
    where = settings.path or "memory"
    print(f"Qdrant emulator on http://{host}:{bound} (collections in {where})", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def run(settings: QdrantEmulatorSettings, host: str, port: int = DEFAULT_PORT) -> None:
    """Serve until Ctrl-C or SIGTERM (blocking)."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(settings, host, port))
