"""Scripted faults: a queue of misbehaviours that the next matching requests suffer.

A fault is posted as JSON to ``POST /_emulator/faults`` (``{"faults": [...]}``)::

    {"kind": "status", "status": 429, "retry_after": 2}   # that provider's error body
    {"kind": "drop"}                                       # close the socket, no response
    {"kind": "drop_mid_stream", "after_chunks": 2}         # N stream frames, then close
    {"kind": "error_event", "after_chunks": 1}             # in-stream error after N frames
    {"kind": "delay", "seconds": 2.0}                      # extra delay, then a normal answer
    {"kind": "pause", "after_chunks": 1, "seconds": 20, "ping_s": 5}
        # a stream: N frames, silence for `seconds` (the provider's keep-alive frame every
        # `ping_s`, when given: Anthropic's `ping` event, an SSE comment for the others), then
        # the rest
    {"kind": "safety_block", "stage": "prompt"}            # or "response"

Every fault may carry the filters ``provider`` ("openai" | "anthropic" | "gemini") and
``model`` (exact upstream model name), and ``count`` (how many matching requests it applies
to, default 1).  Each generation or embedding request consumes the first matching fault.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, cast

FaultKind = Literal[
    "status", "drop", "drop_mid_stream", "error_event", "delay", "safety_block", "pause"
]
PROVIDERS = ("openai", "anthropic", "gemini")
_KINDS = ("status", "drop", "drop_mid_stream", "error_event", "delay", "safety_block", "pause")
_FIELDS = {
    "status": {"status", "retry_after"},
    "drop": set(),
    "drop_mid_stream": {"after_chunks"},
    "error_event": {"after_chunks"},
    "delay": {"seconds"},
    "safety_block": {"stage"},
    "pause": {"after_chunks", "seconds", "ping_s"},
}
_COMMON = {"kind", "provider", "model", "count"}


class FaultSpecError(ValueError):
    """A fault description that cannot be queued."""


@dataclass
class Fault:
    kind: FaultKind
    provider: str | None = None
    model: str | None = None
    count: int = 1
    status: int = 500
    retry_after: float | None = None
    after_chunks: int = 1
    seconds: float = 0.0
    ping_s: float = 0.0
    stage: Literal["prompt", "response"] = "response"

    def matches(self, provider: str, model: str) -> bool:
        return (self.provider is None or self.provider == provider) and (
            self.model is None or self.model == model
        )

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _number(spec: Mapping[str, Any], key: str, default: float, minimum: float) -> float:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise FaultSpecError(f"'{key}' must be a number >= {minimum}")
    return float(value)


def _integer(spec: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise FaultSpecError(f"'{key}' must be an integer between {low} and {high}")
    return value


def _optional_str(spec: Mapping[str, Any], key: str) -> str | None:
    value = spec.get(key)
    if value is not None and not isinstance(value, str):
        raise FaultSpecError(f"'{key}' must be a string")
    return value


def parse_fault(spec: Any) -> Fault:
    """Validate one fault description; unknown kinds and unknown fields are rejected."""
    if not isinstance(spec, Mapping):
        raise FaultSpecError("each fault must be a JSON object")
    kind = spec.get("kind")
    if kind not in _KINDS:
        raise FaultSpecError(f"'kind' must be one of {', '.join(_KINDS)}")
    unknown = set(spec) - _COMMON - _FIELDS[kind]
    if unknown:
        raise FaultSpecError(f"unknown fields for kind {kind!r}: {', '.join(sorted(unknown))}")
    provider = _optional_str(spec, "provider")
    if provider is not None and provider not in PROVIDERS:
        raise FaultSpecError(f"'provider' must be one of {', '.join(PROVIDERS)}")
    stage = spec.get("stage", "response")
    if stage not in ("prompt", "response"):
        raise FaultSpecError("'stage' must be 'prompt' or 'response'")
    retry_after = spec.get("retry_after")
    return Fault(
        kind=cast(FaultKind, kind),
        provider=provider,
        model=_optional_str(spec, "model"),
        count=_integer(spec, "count", 1, 1, 1_000_000),
        status=_integer(spec, "status", 500, 400, 599),
        retry_after=None if retry_after is None else _number(spec, "retry_after", 0, 0),
        after_chunks=_integer(spec, "after_chunks", 1, 0, 1_000_000),
        seconds=_number(spec, "seconds", 0.0, 0.0),
        ping_s=_number(spec, "ping_s", 0.0, 0.0),
        stage=stage,
    )


class FaultQueue:
    """Pending faults, in the order they were posted."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, faults: list[Fault]) -> None:
        self._faults.extend(faults)

    def clear(self) -> int:
        cleared = len(self._faults)
        self._faults.clear()
        return cleared

    def pending(self) -> list[dict[str, Any]]:
        return [f.describe() for f in self._faults]

    def take(self, provider: str, model: str) -> Fault | None:
        """Consume one use of the first fault matching this request, if any."""
        for index, fault in enumerate(self._faults):
            if fault.matches(provider, model):
                fault.count -= 1
                if fault.count <= 0:
                    del self._faults[index]
                return fault
        return None
