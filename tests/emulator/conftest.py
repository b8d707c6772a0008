"""Fixtures: real emulators on ephemeral ports, stopped at the end of each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from ai_gateway.emulator import EmulatorSettings, start

from .support import Emulator

StartEmulator = Callable[..., Awaitable[Emulator]]


@pytest.fixture
async def start_emulator() -> AsyncIterator[StartEmulator]:
    """Start emulators with custom settings; all are stopped at the end of the test."""
    runners: list[Any] = []
    sessions: list[aiohttp.ClientSession] = []

    async def _start(**settings: Any) -> Emulator:
        runner, port = await start(EmulatorSettings(**settings))
        runners.append(runner)
        session = aiohttp.ClientSession()
        sessions.append(session)
        return Emulator(f"http://127.0.0.1:{port}", session)

    yield _start
    for session in sessions:
        await session.close()
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def emulator(start_emulator: StartEmulator) -> Emulator:
    return await start_emulator()
