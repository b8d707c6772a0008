"""Circuit breaker per deployment.

`failures` failures within `window_s` (a sliding window) open a deployment's circuit for
`cooldown_s` (or longer, when the upstream said Retry-After). After the cooldown the breaker is
half-open: exactly one request, the probe, is let through; its success closes the circuit, its
failure opens it again.

The router asks `allows()` on every attempt, so that call is a dictionary lookup: synchronous,
no network, no allocation for a closed circuit. Outcomes are reported with `record_success()`
(free for a closed circuit) and `record_failure()`.

With a `SharedBreakerStore` (Redis, see `breaker_redis.py`) every instance of the gateway counts
failures in the same window and mirrors every trip and close into its local state, so instances
agree on an open circuit within one request. The local state stays authoritative for `allows()`:
when the store is unreachable each instance keeps breaking on its own counts, and says so in
`readiness()`. In shared mode the probe is one per instance, not one per fleet (admitting it
would otherwise cost a network round trip on the hot path).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, TypeVar

from ai_gateway.observability.health import CheckResult, ReadinessCheck
from ai_gateway.observability.logging import get_logger
from ai_gateway.routing.config import BreakerConfig

T = TypeVar("T")

OpenHandler = Callable[[str, float], None]  # (deployment id, seconds the circuit stays open)
CloseHandler = Callable[[str], None]


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class SharedBreakerStore(Protocol):
    """Breaker state shared by gateway instances. Implementations never raise (other than
    cancellation): when the backend is unreachable they answer None / do nothing and report it
    in `readiness()`, and the breaker carries on with its local state."""

    async def start(self, on_open: OpenHandler, on_close: CloseHandler) -> None:
        """Load the circuits already open, then call `on_open` / `on_close` for every trip and
        close made by any instance (this one included) until `aclose()`."""

    async def aclose(self) -> None: ...

    async def add_failure(
        self, dep_id: str, *, threshold: int, window_s: float, open_s: float
    ) -> float | None:
        """Count one failure. The seconds the circuit is now open for (tripped by this failure
        or already open), 0.0 while below the threshold, None when the store cannot tell."""

    async def open(self, dep_id: str, open_s: float) -> None:
        """Open the circuit for at least `open_s` seconds, for every instance."""

    async def close(self, dep_id: str) -> None:
        """Close the circuit and forget its failures, for every instance."""

    def readiness(self) -> CheckResult: ...


@dataclass(slots=True)
class _Circuit:
    """A circuit that is not closed. Closed circuits have no entry at all."""

    until: float  # end of the cooldown, on the breaker's clock
    probe_at: float | None = None  # when the probe in flight was admitted
    half_open: bool = False  # HALF_OPEN has been reported to on_change


class CircuitBreaker:
    """Open / half-open / closed per deployment id. One instance serves the whole router."""

    def __init__(
        self,
        config: BreakerConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedBreakerStore | None = None,
        on_change: Callable[[str, BreakerState], None] | None = None,
        probe_timeout_s: float = 600.0,
    ) -> None:
        """`clock` is local (monotonic); instances share durations, never timestamps.
        `probe_timeout_s`: a probe that never reports (a bug, a lost task) is given up after this
        long and another one is admitted; pass the router's whole-request timeout."""
        self._config = config
        self._clock = clock
        self._shared = shared
        self._on_change = on_change
        self._probe_timeout_s = probe_timeout_s
        self._circuits: dict[str, _Circuit] = {}
        self._failures: dict[str, deque[float]] = {}
        self._log = get_logger(__name__)

    # -- the hot path ------------------------------------------------------------------------

    def allows(self, dep_id: str) -> bool:
        """May a request go to `dep_id` now? After the cooldown, True for exactly one caller (the
        probe) until it reports an outcome or `release_probe()` is called."""
        circuit = self._circuits.get(dep_id)
        if circuit is None:
            return True
        now = self._clock()
        if now < circuit.until:
            return False
        if circuit.probe_at is not None and now - circuit.probe_at < self._probe_timeout_s:
            return False
        circuit.probe_at = now
        if not circuit.half_open:
            circuit.half_open = True
            self._emit(dep_id, BreakerState.HALF_OPEN)
        return True

    def state(self, dep_id: str) -> BreakerState:
        """HALF_OPEN as soon as the cooldown is over, whether or not the probe has been sent."""
        circuit = self._circuits.get(dep_id)
        if circuit is None:
            return BreakerState.CLOSED
        if circuit.half_open or self._clock() >= circuit.until:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def release_probe(self, dep_id: str) -> None:
        """The probe was abandoned without an outcome (client gone): admit another one."""
        circuit = self._circuits.get(dep_id)
        if circuit is not None:
            circuit.probe_at = None

    async def record_success(self, dep_id: str) -> None:
        """A success after the cooldown (the probe's) closes the circuit everywhere. A success
        while closed costs nothing; while still cooling down (a request admitted before the trip)
        it is ignored."""
        circuit = self._circuits.get(dep_id)
        if circuit is None or self._clock() < circuit.until:
            return
        self._close(dep_id)
        if self._shared is not None:
            await self._guard(self._shared.close(dep_id))

    async def record_failure(self, dep_id: str, *, retry_after_s: float | None = None) -> None:
        """Count a failure; reaching the threshold opens the circuit for
        max(cooldown_s, retry_after_s). A failure after the cooldown (the probe's) opens it again.
        A failure while cooling down is not counted, but its `retry_after_s` can extend it."""
        config = self._config
        open_s = (
            config.cooldown_s if retry_after_s is None else max(config.cooldown_s, retry_after_s)
        )
        now = self._clock()
        circuit = self._circuits.get(dep_id)
        if circuit is not None:
            if now < circuit.until:
                if retry_after_s is not None and now + retry_after_s > circuit.until:
                    circuit.until = now + retry_after_s
                    await self._share_open(dep_id, retry_after_s)
                return
            self._trip(dep_id, now + open_s)
            await self._share_open(dep_id, open_s)
            return
        window = self._failures.get(dep_id)
        if window is None:
            window = self._failures[dep_id] = deque(maxlen=config.failures)
        cutoff = now - config.window_s
        while window and window[0] <= cutoff:
            window.popleft()
        window.append(now)
        if len(window) >= config.failures:
            self._trip(dep_id, now + open_s)
            await self._share_open(dep_id, open_s)
            return
        if self._shared is not None:
            shared = self._shared.add_failure(
                dep_id, threshold=config.failures, window_s=config.window_s, open_s=open_s
            )
            remaining_s = await self._guard(shared)
            if remaining_s:  # the shared window tripped (or another instance had already)
                self._mirror_open(dep_id, remaining_s)

    # -- lifecycle and health ----------------------------------------------------------------

    async def start(self) -> None:
        """Shared mode: load the circuits already open and follow other instances' changes.
        Returns once the first connection attempt is over, whether it succeeded or not."""
        if self._shared is not None:
            await self._shared.start(self._mirror_open, self._mirror_close)

    async def aclose(self) -> None:
        if self._shared is not None:
            await self._shared.aclose()

    def readiness(self) -> CheckResult:
        """ok=True for local mode and for a reachable store. ok=False while the store is
        unreachable: the breaker still works, per instance, so register it as not required
        (`readiness_check()`): /health/ready shows it "down" and stays 200."""
        if self._shared is None:
            return CheckResult(True, "local: circuit state is per instance (no REDIS_URL)")
        return self._shared.readiness()

    def readiness_check(self, name: str = "circuit_breaker") -> ReadinessCheck:
        async def probe() -> CheckResult:
            return self.readiness()

        return ReadinessCheck(name=name, required=False, probe=probe)

    # -- transitions -------------------------------------------------------------------------

    def _trip(self, dep_id: str, until: float) -> None:
        self._failures.pop(dep_id, None)
        circuit = self._circuits.get(dep_id)
        if circuit is None:
            self._circuits[dep_id] = _Circuit(until)
            self._emit(dep_id, BreakerState.OPEN)
            return
        reopened = circuit.half_open
        circuit.until, circuit.probe_at, circuit.half_open = until, None, False
        if reopened:
            self._emit(dep_id, BreakerState.OPEN)

    def _close(self, dep_id: str) -> None:
        self._failures.pop(dep_id, None)
        if self._circuits.pop(dep_id, None) is not None:
            self._emit(dep_id, BreakerState.CLOSED)

    def _mirror_open(self, dep_id: str, remaining_s: float) -> None:
        """Some instance opened the circuit for `remaining_s` more seconds."""
        until = self._clock() + remaining_s
        circuit = self._circuits.get(dep_id)
        if circuit is None or circuit.half_open:
            self._trip(dep_id, until)  # a trip, or another instance's probe failed
        elif until > circuit.until:
            circuit.until = until

    def _mirror_close(self, dep_id: str) -> None:
        """Some instance's probe succeeded."""
        self._close(dep_id)

    async def _share_open(self, dep_id: str, open_s: float) -> None:
        if self._shared is not None:
            await self._guard(self._shared.open(dep_id, open_s))

    async def _guard(self, call: Awaitable[T]) -> T | None:
        """Stores promise not to raise; a broken one must still not fail the request."""
        try:
            return await call
        except Exception as exc:
            self._log.warning("breaker_store_error", error=type(exc).__name__)
            return None

    def _emit(self, dep_id: str, state: BreakerState) -> None:
        self._log.info("breaker_state_changed", deployment=dep_id, state=state.value)
        if self._on_change is None:
            return
        try:
            self._on_change(dep_id, state)
        except Exception as exc:  # metrics or logging must not fail a request
            self._log.warning("breaker_on_change_failed", error=type(exc).__name__)
