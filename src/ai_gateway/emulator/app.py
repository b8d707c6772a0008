"""The emulator application: one port, three providers' wire formats, test controls.

Routes: OpenAI ``/v1/chat/completions``, ``/v1/embeddings``, ``/v1/models``; Anthropic
``/v1/messages``; Gemini ``/v1beta/models/{model}:generateContent`` (and
``streamGenerateContent``, ``embedContent``, ``batchEmbedContents``) and
``/v1beta/models``; controls under ``/_emulator`` (see :mod:`control`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

from aiohttp import web

from ai_gateway.emulator import anthropic, control, gemini, openai
from ai_gateway.emulator.settings import EmulatorSettings
from ai_gateway.emulator.state import STATE_KEY, EmulatorState

__all__ = ["EmulatorSettings", "create_app", "run", "start"]

MAX_BODY_BYTES = 32 * 1024 * 1024
SHUTDOWN_TIMEOUT_S = 1.0


def create_app(settings: EmulatorSettings) -> web.Application:
    """Build the emulator application; all its state lives on the returned app."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[STATE_KEY] = EmulatorState(settings)
    openai.add_routes(app)
    anthropic.add_routes(app)
    gemini.add_routes(app)
    control.add_routes(app)
    return app


async def start(
    settings: EmulatorSettings, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, int]:
    """Start serving; returns the runner (call ``await runner.cleanup()``) and the port."""
    runner = web.AppRunner(
        create_app(settings), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = int(runner.addresses[0][1])
    return runner, bound


async def _serve_forever(settings: EmulatorSettings, host: str, port: int) -> None:
    stop = asyncio.Event()
    with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows loops
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    runner, bound = await start(settings, host, port)
    print(f"Provider emulator listening on http://{host}:{bound}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def run(settings: EmulatorSettings, host: str, port: int) -> None:
    """Serve until Ctrl-C or SIGTERM (blocking); prints the address it listens on."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(settings, host, port))
