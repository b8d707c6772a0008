"""Demo mode: with no provider configured, the built-in emulator answers, clearly labelled.

`ai-gateway serve` with no provider key, no provider base URL and no config file (and
`AI_GATEWAY_DEMO` not set to false) starts the provider emulator on a free loopback port, in a
thread of its own, and serves four model names backed by it: one per wire format (OpenAI,
Anthropic, Gemini) and an embedding model. The gateway then works end to end, every wire format
and streaming included, without any key. Answers are the emulator's canned text, never a
model's: `/v1/models` marks the names `"demo": true`, the start-up lines say so, and every
response carries the `x-gateway-demo` header. Any real key or config file turns demo mode off.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from dataclasses import dataclass

from pydantic import SecretStr

from ai_gateway.settings import Config, DeploymentConfig, ModelGroupConfig, ProviderName

# The header every response carries in demo mode.
DEMO_HEADER = (b"x-gateway-demo", b"built-in emulator; answers are canned text, not a model")
# A variable the serve command hands to its worker processes (--workers > 1): where the
# emulator it started listens.
UPSTREAM_ENV = "AI_GATEWAY_DEMO_UPSTREAM"


@dataclass(frozen=True)
class DemoModel:
    name: str
    provider: ProviderName
    upstream_model: str
    wire_format: str


DEMO_MODELS = (
    DemoModel("demo-gpt", "openai", "gpt-4o-mini", "OpenAI Chat Completions"),
    DemoModel("demo-claude", "anthropic", "claude-sonnet-4-5", "Anthropic Messages"),
    DemoModel("demo-gemini", "gemini", "gemini-2.5-flash", "Gemini generateContent"),
    DemoModel("demo-embedding", "openai", "text-embedding-3-small", "OpenAI Embeddings"),
)


def wants_demo(config: Config) -> bool:
    """Demo mode is on unless turned off, or anything real is configured: a config file, a
    provider key or a provider base URL."""
    setting = config.gateway.demo
    if setting is not None:
        return setting
    configured = any(p.api_key is not None or p.api_base for p in config.providers.values())
    return config.source == "environment" and not configured and not config.models


def with_demo(config: Config, upstream_url: str) -> Config:
    """`config` with the demo model names, each served by the emulator at `upstream_url`."""

    def group(model: DemoModel) -> ModelGroupConfig:
        # The emulator's paths: OpenAI's under /v1; the Anthropic and Gemini adapters add theirs.
        base = f"{upstream_url}/v1" if model.provider == "openai" else upstream_url
        deployment = DeploymentConfig(
            provider=model.provider,
            model=model.upstream_model,
            api_base=base,
            api_key=SecretStr("demo"),  # the emulator accepts any non-empty key
        )
        return ModelGroupConfig(name=model.name, deployments=(deployment,))

    groups = tuple(group(model) for model in DEMO_MODELS)
    return dataclasses.replace(config, models=config.models + groups, demo_upstream=upstream_url)


class DemoUpstream:
    """The provider emulator, serving on 127.0.0.1 from a daemon thread with its own event loop
    (so it works the same in front of one gateway process or several workers)."""

    def __init__(self) -> None:
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="demo-upstream", daemon=True)

    def start(self, timeout_s: float = 10.0) -> str:
        """Start serving; returns the base URL (no path)."""
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise RuntimeError("the demo provider emulator did not start")
        if self._error is not None:
            raise RuntimeError(f"the demo provider emulator did not start: {self._error}")
        return self.url

    def stop(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        from ai_gateway.emulator.app import EmulatorSettings, start

        self._stop = asyncio.Event()
        try:
            runner, port = await start(EmulatorSettings(), "127.0.0.1", 0)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            raise
        self.url = f"http://127.0.0.1:{port}"
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()
