"""Server-wide emulator settings (re-exported from ``ai_gateway.emulator.app``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EmulatorSettings:
    """How the emulator behaves for every request.

    ``latency_s`` delays every answer before it starts, ``chunk_delay_s`` separates stream
    frames, ``api_keys`` restricts the accepted keys (empty: any non-empty key) and
    ``embedding_dim`` is the default length of embedding vectors.
    """

    latency_s: float = 0.0
    chunk_delay_s: float = 0.0
    api_keys: frozenset[str] = frozenset()
    embedding_dim: int = 8

    def accepts(self, key: str) -> bool:
        return bool(key) and (not self.api_keys or key in self.api_keys)
