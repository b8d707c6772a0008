"""Test helpers: a small HTTP client for a running emulator and an SSE decoder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp

OPENAI_HEADERS = {"Authorization": "Bearer sk-test"}
ANTHROPIC_HEADERS = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
GEMINI_HEADERS = {"x-goog-api-key": "gm-test"}


@dataclass
class Emulator:
    base: str
    session: aiohttp.ClientSession

    async def post(
        self, path: str, body: Any, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        async with self.session.post(self.base + path, json=body, headers=headers) as resp:
            text = await resp.text()
            return resp.status, _maybe_json(text), resp

    async def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        async with self.session.get(self.base + path, headers=headers) as resp:
            return resp.status, _maybe_json(await resp.text())

    async def faults(self, *faults: dict[str, Any]) -> None:
        async with self.session.post(self.base + "/_emulator/faults", json={"faults": faults}) as r:
            assert r.status == 200, await r.text()

    async def stats(self) -> dict[str, Any]:
        status, body = await self.get("/_emulator/stats")
        assert status == 200
        providers: dict[str, Any] = body["providers"]
        return providers

    async def requests(self, limit: int | None = None) -> list[dict[str, Any]]:
        query = "" if limit is None else f"?limit={limit}"
        status, body = await self.get("/_emulator/requests" + query)
        assert status == 200
        entries: list[dict[str, Any]] = body["requests"]
        return entries


def _maybe_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_sse(text: str) -> list[tuple[str | None, Any]]:
    """Decode an SSE body into (event name, decoded data) pairs."""
    events: list[tuple[str | None, Any]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        if not block.strip():
            continue
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data.append(line[len("data: ") :])
        raw = "\n".join(data)
        events.append((name, raw if raw == "[DONE]" else json.loads(raw)))
    return events
