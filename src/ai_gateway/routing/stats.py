"""In-process statistics per deployment: requests in flight, latency, time to first token.

The balancing strategies read them (least-busy, least-latency) and hedging reads the p95.
Every update is O(1); reads are O(1) except :meth:`DeploymentStats.p95`, which sorts the
last ``window`` latencies (100 by default). The gateway runs on one asyncio thread, so no
locks are taken; the numbers are this process's view only and are not shared between
gateway instances.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

__all__ = ["DeploymentStats"]


@dataclass(slots=True)
class _Entry:
    recent: deque[float]
    in_flight: int = 0
    latency: float | None = None
    ttft: float | None = None
    samples: int = 0


@dataclass(slots=True)
class DeploymentStats:
    """Statistics keyed by deployment id.

    ``alpha`` weighs the newest sample in the moving averages (EWMA: ``new = alpha * sample
    + (1 - alpha) * old``; the first sample is taken as is). ``window`` latencies are kept
    for :meth:`p95`. At most ``max_deployments`` ids are tracked: when a new one arrives at
    the limit, the longest-tracked idle id is forgotten (``provider/<model>`` requests can
    name endless distinct deployments).
    """

    alpha: float = 0.3
    window: int = 100
    max_deployments: int = 10_000
    _entries: dict[str, _Entry] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")
        if self.window < 1:
            raise ValueError(f"window must be at least 1, got {self.window}")
        if self.max_deployments < 1:
            raise ValueError(f"max_deployments must be at least 1, got {self.max_deployments}")

    def _entry(self, dep_id: str) -> _Entry:
        entry = self._entries.get(dep_id)
        if entry is None:
            if len(self._entries) >= self.max_deployments:
                self._forget_one_idle()
            entry = self._entries[dep_id] = _Entry(recent=deque(maxlen=self.window))
        return entry

    def _forget_one_idle(self) -> None:
        # Oldest first (dicts keep insertion order); busy entries are kept so that their
        # in-flight counts stay right. If every entry is busy the table grows past the limit.
        for dep_id, entry in self._entries.items():
            if entry.in_flight == 0:
                del self._entries[dep_id]
                return

    def started(self, dep_id: str) -> None:
        """A request to ``dep_id`` was sent."""
        self._entry(dep_id).in_flight += 1

    def finished(
        self, dep_id: str, seconds: float, *, ok: bool, first_token_s: float | None = None
    ) -> None:
        """A request to ``dep_id`` ended after ``seconds``.

        Only successful requests (``ok``) feed the latency figures: a fast failure says
        nothing about how fast the deployment answers. ``first_token_s`` is the time to the
        first streamed token, for streams.
        """
        entry = self._entry(dep_id)
        entry.in_flight = max(0, entry.in_flight - 1)
        if not ok or not math.isfinite(seconds) or seconds < 0:
            return
        entry.latency = self._ewma(entry.latency, seconds)
        entry.recent.append(seconds)
        entry.samples += 1
        if first_token_s is not None and math.isfinite(first_token_s) and first_token_s >= 0:
            entry.ttft = self._ewma(entry.ttft, first_token_s)

    def _ewma(self, old: float | None, sample: float) -> float:
        return sample if old is None else self.alpha * sample + (1 - self.alpha) * old

    def in_flight(self, dep_id: str) -> int:
        entry = self._entries.get(dep_id)
        return 0 if entry is None else entry.in_flight

    def latency(self, dep_id: str) -> float | None:
        """Moving average of successful request latency in seconds; None before any."""
        entry = self._entries.get(dep_id)
        return None if entry is None else entry.latency

    def ttft(self, dep_id: str) -> float | None:
        """Moving average of time to first token of successful streams; None before any."""
        entry = self._entries.get(dep_id)
        return None if entry is None else entry.ttft

    def samples(self, dep_id: str) -> int:
        """How many successful latencies have been recorded for ``dep_id``."""
        entry = self._entries.get(dep_id)
        return 0 if entry is None else entry.samples

    def p95(self, dep_id: str, minimum_samples: int = 20) -> float | None:
        """95th percentile (nearest rank) of the last ``window`` successful latencies.

        None until ``minimum_samples`` latencies have been recorded: a percentile of a
        handful of requests is noise.
        """
        entry = self._entries.get(dep_id)
        if entry is None or not entry.recent or entry.samples < minimum_samples:
            return None
        ordered = sorted(entry.recent)
        return ordered[math.ceil(0.95 * len(ordered)) - 1]
