"""Emulators of the DevMentor Memory (3003), Project (3004) and Learning (3005) services: real
HTTP servers over deterministic seeded data, with faults set at start or through
``/_emulator/faults`` (see :mod:`faults`). ``ai-gateway emulate --services`` runs all three.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from ai_gateway.emulator.services import data, handlers
from ai_gateway.emulator.services.faults import (
    STATE_KEY,
    ServiceFaults,
    ServiceState,
    add_control_routes,
    apply_faults,
)

ServiceName = Literal["memory", "project", "learning"]
SERVICES: tuple[ServiceName, ...] = ("memory", "project", "learning")
DEFAULT_PORTS: Mapping[ServiceName, int] = {"memory": 3003, "project": 3004, "learning": 3005}
MAX_BODY_BYTES = 4 * 1024 * 1024
SHUTDOWN_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class ServiceSettings:
    """`faults`: those the service starts with. `tokens`: the bearer tokens it accepts (empty:
    it asks for none)."""

    faults: ServiceFaults = field(default_factory=ServiceFaults)
    tokens: frozenset[str] = frozenset()


def _seed(service: ServiceName) -> Any:
    if service == "memory":
        return data.memory_data()
    if service == "project":
        return data.project_data()
    return data.learning_data()


def create_app(service: ServiceName, settings: ServiceSettings | None = None) -> web.Application:
    """One service's emulator; all its state (data, faults, log) lives on the returned app."""
    settings = settings or ServiceSettings()
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[apply_faults])
    app[STATE_KEY] = ServiceState(service, settings.faults, settings.tokens, _seed(service))
    router = app.router
    if service == "memory":
        router.add_post("/v1/memories/search", handlers.search_memories)
        router.add_post("/v1/exchanges", handlers.store_exchange)
    elif service == "project":
        router.add_post("/v1/projects/{project_id}/context", handlers.project_context)
    else:
        router.add_get("/v1/learners/{user_id}/profile", handlers.learner_profile)
    router.add_get("/health", handlers.health)
    add_control_routes(app)
    return app


async def start(
    service: ServiceName,
    settings: ServiceSettings | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> tuple[web.AppRunner, int]:
    """Start serving one service; returns the runner (call ``await runner.cleanup()``) and the
    port it listens on."""
    runner = web.AppRunner(
        create_app(service, settings), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, int(runner.addresses[0][1])


async def _serve_forever(
    settings: ServiceSettings, host: str, ports: Mapping[ServiceName, int]
) -> None:
    stop = asyncio.Event()
    with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows loops
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    runners: list[web.AppRunner] = []
    try:
        for service in SERVICES:
            runner, bound = await start(service, settings, host, ports[service])
            runners.append(runner)
            print(f"{service.capitalize()} service emulator on http://{host}:{bound}", flush=True)
        await stop.wait()
    finally:
        for runner in runners:
            await runner.cleanup()


def run(
    settings: ServiceSettings, host: str, ports: Mapping[ServiceName, int] = DEFAULT_PORTS
) -> None:
    """Serve the three services until Ctrl-C or SIGTERM (blocking)."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(settings, host, ports))
