"""The DevMentor service emulators (Memory, Project, Learning) as real servers on 127.0.0.1, on
their own event loop thread (like `harness.EmulatorServer`), with helpers for their controls."""

from __future__ import annotations

import contextlib
from typing import Any

import httpx

from ai_gateway.emulator.services import SERVICES, ServiceName, ServiceSettings, start
from ai_gateway.integrations.config import IntegrationsConfig, ServiceConfig
from harness import LoopThread


class ServiceEmulators:
    def __init__(self, settings: dict[ServiceName, ServiceSettings] | None = None) -> None:
        self._thread = LoopThread("service-emulators")
        self._runners = []
        self.urls: dict[ServiceName, str] = {}
        try:
            for name in SERVICES:
                runner, port = self._thread.run(start(name, (settings or {}).get(name)))
                self._runners.append(runner)
                self.urls[name] = f"http://127.0.0.1:{port}"
        except BaseException:
            self.stop()
            raise
        self.http = httpx.Client(timeout=10)

    def faults(self, name: ServiceName, **faults: Any) -> None:
        url = f"{self.urls[name]}/_emulator/faults"
        self.http.put(url, json=faults).raise_for_status()

    def requests(self, name: ServiceName) -> list[dict[str, Any]]:
        resp = self.http.get(f"{self.urls[name]}/_emulator/requests")
        resp.raise_for_status()
        entries: list[dict[str, Any]] = resp.json()["requests"]
        return entries

    def config(self, **overrides: Any) -> IntegrationsConfig:
        """An IntegrationsConfig pointing at these emulators; `timeout_s` sets every service's."""
        timeout_s = overrides.pop("timeout_s", 2.0)
        services = {
            name: ServiceConfig(url=url, timeout_s=timeout_s) for name, url in self.urls.items()
        }
        return IntegrationsConfig.model_validate({"enabled": True, **services, **overrides})

    def stop(self) -> None:
        if hasattr(self, "http"):
            self.http.close()
        for runner in self._runners:
            with contextlib.suppress(Exception):
                self._thread.run(runner.cleanup(), timeout=15)
        self._thread.stop()
