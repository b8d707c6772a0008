"""Per-app emulator state: settings, the fault queue, the request log, the statistics and the
Anthropic prompt cache.

Everything lives on the ``aiohttp`` application object under :data:`STATE_KEY`; nothing is
module-level, so two emulators in one process never share anything.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ai_gateway.emulator.faults import FaultQueue
from ai_gateway.emulator.settings import EmulatorSettings

REQUEST_LOG_SIZE = 1000
PROMPT_CACHE_SIZE = 10_000


class RequestLog:
    """The last requests received by the provider endpoints, oldest first."""

    def __init__(self, size: int = REQUEST_LOG_SIZE) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=size)
        self._seq = 0

    def record(self, request: web.Request, provider: str, body: Any) -> None:
        self._seq += 1
        self._entries.append(
            {
                "seq": self._seq,
                "time": time.time(),
                "provider": provider,
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": body,
            }
        )

    def last(self, limit: int | None) -> list[dict[str, Any]]:
        entries = list(self._entries)
        if limit is None:
            return entries
        return entries[-limit:] if limit > 0 else []

    def clear(self) -> int:
        cleared = len(self._entries)
        self._entries.clear()
        return cleared


@dataclass
class ModelStats:
    """What one provider served for one model.

    ``succeeded`` counts complete answers; the token counts are exactly those reported in
    their usage (for streams: the usage the stream carries, or would carry when the client
    did not ask for it).  ``errors`` counts error responses by HTTP status, ``dropped`` the
    connections closed by a drop fault, ``stream_errors`` in-stream error events and
    ``client_disconnects`` streams abandoned by the client.
    """

    requests: int = 0
    succeeded: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    dropped: int = 0
    stream_errors: int = 0
    client_disconnects: int = 0


class Stats:
    def __init__(self) -> None:
        self._by_provider: dict[str, dict[str, ModelStats]] = {}

    def _get(self, provider: str, model: str) -> ModelStats:
        return self._by_provider.setdefault(provider, {}).setdefault(model, ModelStats())

    def request(self, provider: str, model: str) -> None:
        self._get(provider, model).requests += 1

    def success(self, provider: str, model: str, prompt: int, completion: int) -> None:
        entry = self._get(provider, model)
        entry.succeeded += 1
        entry.prompt_tokens += prompt
        entry.completion_tokens += completion

    def error(self, provider: str, model: str, status: int) -> None:
        errors = self._get(provider, model).errors
        errors[str(status)] = errors.get(str(status), 0) + 1

    def dropped(self, provider: str, model: str) -> None:
        self._get(provider, model).dropped += 1

    def stream_error(self, provider: str, model: str) -> None:
        self._get(provider, model).stream_errors += 1

    def client_disconnect(self, provider: str, model: str) -> None:
        self._get(provider, model).client_disconnects += 1

    def snapshot(self) -> dict[str, dict[str, dict[str, Any]]]:
        return {
            provider: {model: vars(entry).copy() for model, entry in models.items()}
            for provider, models in self._by_provider.items()
        }

    def clear(self) -> None:
        self._by_provider.clear()


class PromptCache:
    """The prefixes the Anthropic endpoint has cached (see ``anthropic_cache``), as digests.

    Entries live as long as the emulator (no TTL); past ``size`` entries, the least recently
    used is forgotten."""

    def __init__(self, size: int = PROMPT_CACHE_SIZE) -> None:
        self._digests: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def hit(self, digest: str) -> bool:
        """Whether ``digest`` is cached; a hit counts as a use."""
        if digest not in self._digests:
            return False
        self._digests.move_to_end(digest)
        return True

    def add(self, digest: str) -> None:
        self._digests[digest] = None
        self._digests.move_to_end(digest)
        while len(self._digests) > self._size:
            self._digests.popitem(last=False)

    def clear(self) -> int:
        cleared = len(self._digests)
        self._digests.clear()
        return cleared


@dataclass
class EmulatorState:
    settings: EmulatorSettings
    faults: FaultQueue = field(default_factory=FaultQueue)
    requests: RequestLog = field(default_factory=RequestLog)
    stats: Stats = field(default_factory=Stats)
    prompt_cache: PromptCache = field(default_factory=PromptCache)


STATE_KEY = web.AppKey("emulator_state", EmulatorState)


def state_of(request: web.Request) -> EmulatorState:
    return request.app[STATE_KEY]
