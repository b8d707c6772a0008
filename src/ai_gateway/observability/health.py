"""What a readiness check is: a dependency's probe and its result. The stores, the breaker and the
rate limiters define their probes with these; `api/health.py` runs them for `GET /health/ready`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str


@dataclass(frozen=True)
class ReadinessCheck:
    """A dependency's probe; a required one that fails makes the gateway not ready (503)."""

    name: str
    required: bool
    probe: Callable[[], Awaitable[CheckResult]]
