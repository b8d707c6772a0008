"""The notifier: events in, deliveries out, off the hot path.

`emit()` is what the gateway's emit points call: it never waits. It drops an event no rule wants
at once, puts the others on a bounded queue, and drops (and counts) an event when the queue is
full. A background task takes events off the queue; for each, every matching rule claims the
occurrence (notify/dedupe.py: once per deployment, and at most once per the rule's
`min_interval_s`), and the event goes to each channel of the rules that won their claim, once
per channel, with retries and exponential backoff. Each delivery's outcome is kept in a ring
buffer of this instance (GET /admin/notifications), and counted in `/metrics` when a
`NotifyMetrics` is given (notify/metrics.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from time import perf_counter
from typing import Any

from ai_gateway.notify.channels import Channel, DeliveryError
from ai_gateway.notify.config import NotificationsConfig, RetryConfig
from ai_gateway.notify.dedupe import Claims
from ai_gateway.notify.events import Event
from ai_gateway.notify.metrics import NotifyMetrics
from ai_gateway.observability.logging import get_logger

log = get_logger(__name__)
Sleep = Callable[[float], Awaitable[None]]


def backoff_s(retry: RetryConfig, attempt: int) -> float:
    """The wait before try `attempt + 1` after `attempt` failed tries (1, 2, ...)."""
    return float(min(retry.max_backoff_s, retry.backoff_s * 2 ** (attempt - 1)))


@dataclass(frozen=True, slots=True)
class Delivery:
    event_id: str
    event: str
    subject: str
    channel: str
    channel_type: str
    outcome: str  # "delivered" or "failed"
    attempts: int
    status: int | None  # the receiver's last HTTP status (SMTP reply code for email)
    error: str | None
    at: datetime
    duration_ms: float

    def as_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event": self.event,
            "subject": self.subject,
            "channel": self.channel,
            "channel_type": self.channel_type,
            "outcome": self.outcome,
            "attempts": self.attempts,
            "status": self.status,
            "error": self.error,
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "duration_ms": round(self.duration_ms, 1),
        }


class Notifier:
    def __init__(
        self,
        config: NotificationsConfig,
        channels: Mapping[str, Channel],
        claims: Claims,
        *,
        sleep: Sleep = asyncio.sleep,
        metrics: NotifyMetrics | None = None,
    ) -> None:
        self._channels = dict(channels)
        self._metrics = metrics
        self._claims = claims
        self._sleep = sleep
        self._rules: dict[str, list[tuple[str, float, tuple[str, ...]]]] = {}
        for number, rule in enumerate(config.rules):
            label = rule.name or f"rule{number}"
            for kind in rule.events:
                self._rules.setdefault(kind, []).append((label, rule.min_interval_s, rule.channels))
        self._everything = self._rules.pop("*", [])
        self._queue: asyncio.Queue[Event] = asyncio.Queue(config.queue_size)
        self._history: deque[Delivery] = deque(maxlen=config.history)
        self._limit = asyncio.Semaphore(config.concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self.emitted = 0
        self.dropped = 0
        self.suppressed = 0  # claimed by another instance, or within a rule's min interval

    def wants(self, kind: str) -> bool:
        return bool(self._everything) or kind in self._rules

    def emit(self, event: Event) -> None:
        """Queue `event` for delivery; never waits, never raises."""
        if not self.wants(event.kind):
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
            if self._metrics is not None:
                self._metrics.dropped()
            log.warning("notification_dropped", kind=event.kind, reason="queue_full")
            return
        self.emitted += 1

    # -- the background sender -----------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name="notify-sender")

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """Send what is queued and under way for up to `timeout_s`, then stop."""
        if self._runner is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._queue.join()
                while self._tasks:
                    await asyncio.wait(set(self._tasks))
        self._runner.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(self._runner, *self._tasks, return_exceptions=True)
        self._runner = None
        left = self._queue.qsize()
        if left:
            self.dropped += left
            if self._metrics is not None:
                self._metrics.dropped(left)
            log.warning("notifications_dropped_at_shutdown", count=left)

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            await self._limit.acquire()
            task = asyncio.create_task(self._deliver(event))
            self._tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._limit.release()
        self._queue.task_done()
        if not task.cancelled() and task.exception() is not None:
            log.error("notification_failed", error=type(task.exception()).__name__)

    async def _deliver(self, event: Event) -> None:
        channels: dict[str, None] = {}
        for label, min_interval_s, names in (*self._rules.get(event.kind, ()), *self._everything):
            ttl = max(min_interval_s, event.ttl_s, 1.0)
            if await self._claims.claim(f"{label}:{event.dedupe}", ttl):
                channels.update(dict.fromkeys(names))
            else:
                self.suppressed += 1
                if self._metrics is not None:
                    self._metrics.suppressed(event.kind)
        await asyncio.gather(*(self.send(self._channels[name], event) for name in channels))

    async def send(self, channel: Channel, event: Event, *, retry: bool = True) -> Delivery:
        """Send `event` through `channel` (with its retries unless `retry` is False) and keep the
        outcome in the history."""
        started = perf_counter()
        attempts, status, error = 0, None, None
        tries = 1 + (channel.retry.retries if retry else 0)
        while attempts < tries:
            attempts += 1
            try:
                status = await channel.send(event)
                error = None
                break
            except DeliveryError as exc:
                status, error = exc.status, str(exc)
                if not exc.retryable or attempts == tries:
                    break
                await self._sleep(backoff_s(channel.retry, attempts))
        delivery = Delivery(
            event_id=event.id,
            event=event.kind,
            subject=event.subject,
            channel=channel.name,
            channel_type=channel.kind,
            outcome="failed" if error is not None else "delivered",
            attempts=attempts,
            status=status,
            error=error,
            at=datetime.now(UTC),
            duration_ms=(perf_counter() - started) * 1000,
        )
        self._history.append(delivery)
        if self._metrics is not None:
            self._metrics.delivered(event.kind, channel.name, delivery.outcome)
        if error is not None:
            log.warning(
                "notification_not_delivered",
                kind=event.kind,
                channel=channel.name,
                attempts=attempts,
                error=error,
            )
        return delivery

    # -- what the admin API shows ---------------------------------------------------------------

    @property
    def channels(self) -> Mapping[str, Channel]:
        return self._channels

    def deliveries(self) -> list[Delivery]:
        """The most recent first."""
        return list(reversed(self._history))

    def stats(self) -> dict[str, int]:
        return {
            "emitted": self.emitted,
            "dropped": self.dropped,
            "suppressed": self.suppressed,
            "queued": self._queue.qsize(),
            "sending": len(self._tasks),
        }
