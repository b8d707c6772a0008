"""The background writer in `/metrics` and `/health/ready`.

Metrics (docs/observability.md): records written and dropped (counted as it happens, through the
writer's `on_written` / `on_drop`), store calls that failed, the records waiting in the buffer
and whether the last store call succeeded. With one process the two gauges are read from the
writer when `/metrics` is scraped; with several workers (multiprocess mode) each worker sets
them after every turn of its writer (at most a flush interval, or a retry backoff, late) and
`/metrics` shows the sum of the backlogs and the lowest `store_up`.

Readiness: the check probes the store (a small read, bounded by `probe_timeout_s`) and reads
the writer's state; it is `down` while either fails, with the backlog and the drops in its
detail. It is not required: requests keep flowing while the store is down (their records wait in
the buffer), so an analytics outage does not take the gateway out of rotation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from prometheus_client import Counter, Gauge

from ai_gateway.observability.metrics import Metrics
from ai_gateway.stores.analytics import AnalyticsStore
from ai_gateway.usage.writer import AnalyticsWriter, WriterStats

Probe = Callable[[], Awaitable[tuple[bool, str]]]


class WriterMetrics:
    """Build once per app (on the app's registry), pass its callbacks to the writer, then
    `watch` the writer."""

    def __init__(self, metrics: Metrics) -> None:
        r = metrics.registry
        self._multiprocess = metrics.multiprocess_dir is not None
        self.written = Counter(
            "ai_gateway_analytics_records_written_total",
            "Usage, feedback and audit records the analytics store has taken.",
            registry=r,
        )
        self.dropped = Counter(
            "ai_gateway_analytics_records_dropped_total",
            "Records lost: the writer's buffer was full, the store rejected them, or it was "
            "still down at the end of a graceful shutdown.",
            registry=r,
        )
        self.failures = Counter(
            "ai_gateway_analytics_write_failures_total",
            "Store calls (batches) that failed; their records stay buffered and are retried.",
            registry=r,
        )
        self.pending = Gauge(
            "ai_gateway_analytics_pending_records",
            "Records waiting in the writer's buffer (the backlog).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.store_up = Gauge(
            "ai_gateway_analytics_store_up",
            "1 when the writer's last store call succeeded, 0 while the store is failing.",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.store_up.set(1)
        self._failures_seen = 0

    def on_written(self, count: int) -> None:
        self.written.inc(count)

    def on_drop(self, count: int) -> None:
        self.dropped.inc(count)

    def on_state(self, stats: WriterStats) -> None:
        if stats.failed_attempts > self._failures_seen:
            self.failures.inc(stats.failed_attempts - self._failures_seen)
            self._failures_seen = stats.failed_attempts
        if self._multiprocess:
            self.pending.set(stats.pending)
            self.store_up.set(1 if stats.store_available else 0)

    def watch(self, writer: AnalyticsWriter) -> None:
        """One process: the gauges read the writer when scraped (always current)."""
        if not self._multiprocess:
            self.pending.set_function(lambda: writer.stats.pending)
            self.store_up.set_function(lambda: 1 if writer.stats.store_available else 0)


def writer_probe(
    writer: AnalyticsWriter,
    store: AnalyticsStore | None,
    max_buffer: int,
    *,
    probe_timeout_s: float = 2.0,
) -> Probe:
    """The readiness probe of the writer and its store: (ok, detail)."""

    async def probe() -> tuple[bool, str]:
        failure = None
        if store is not None:
            try:
                async with asyncio.timeout(probe_timeout_s):
                    await store.schema_version()
            except Exception as exc:  # whatever the driver raised: the store did not answer
                failure = f"unreachable ({type(exc).__name__})"
        stats = writer.stats
        if failure is None and not stats.store_available:
            failure = "failing writes"
        backlog = (
            f"{stats.pending} records pending (buffer {max_buffer}), {stats.written} written, "
            f"{stats.dropped} dropped"
        )
        if failure is None:
            return True, backlog
        return False, (
            f"store {failure}: {backlog}; requests are served and their records kept until "
            "the store is back or the buffer is full"
        )

    return probe
