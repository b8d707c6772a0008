"""App assembly of analytics (docs/observability.md): the background writer of usage records,
feedback and audit records, and its readiness check."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ai_gateway.observability.health import CheckResult, ReadinessCheck
from ai_gateway.settings import GatewaySettings
from ai_gateway.stores.analytics import AnalyticsStore
from ai_gateway.stores.security import SecurityStore
from ai_gateway.usage.journal import Journal
from ai_gateway.usage.writer import AnalyticsWriter, WriterStats
from ai_gateway.usage.writer_metrics import writer_probe


def analytics_writer(
    settings: GatewaySettings,
    store: AnalyticsStore | None,
    *,
    audit: SecurityStore | None = None,
    on_drop: Callable[[int], None] | None = None,
    on_written: Callable[[int], None] | None = None,
    on_state: Callable[[WriterStats], None] | None = None,
) -> AnalyticsWriter:
    """The background writer with the settings' buffer size and retention: usage and feedback
    to `store` (None: analytics is off), audit records to `audit`. The callbacks report what
    it wrote and dropped, and its state after each turn (`usage/writer_metrics.py` puts them in
    /metrics). With `analytics_journal` on and something to write, records are journaled under
    `<data_dir>/journal` until the store has them."""
    journal = None
    if settings.analytics_journal and (store is not None or audit is not None):
        journal = Journal(Path(settings.data_dir) / "journal")
    return AnalyticsWriter(
        store,
        audit=audit,
        max_buffer=settings.analytics_buffer,
        retention_days=settings.analytics_retention_days,
        on_drop=on_drop,
        on_written=on_written,
        on_state=on_state,
        journal=journal,
    )


def writer_readiness_check(
    writer: AnalyticsWriter, store: AnalyticsStore | None, max_buffer: int
) -> ReadinessCheck:
    """`analytics` in /health/ready: the store and the writer's backlog. Not required: while the
    store is down requests are served and their records wait in the writer's buffer."""
    probe = writer_probe(writer, store, max_buffer)

    async def check() -> CheckResult:
        ok, detail = await probe()
        return CheckResult(ok, detail)

    return ReadinessCheck("analytics", False, check)
