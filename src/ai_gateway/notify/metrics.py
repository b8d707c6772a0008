"""The notifier in `/metrics` (docs/notifications.md, "Metrics"): deliveries by event, channel and
outcome, events dropped (queue full or left at shutdown) and events suppressed (another instance
claimed them, or a rule's `min_interval_s`). Labels are bounded: event kinds are a fixed set and
channel names come from the config."""

from __future__ import annotations

from prometheus_client import Counter

from ai_gateway.observability.metrics import Metrics


class NotifyMetrics:
    def __init__(self, metrics: Metrics) -> None:
        r = metrics.registry
        self._deliveries = Counter(
            "ai_gateway_notifications_total",
            "Notifications sent, by event, channel and outcome (delivered or failed after "
            "its retries).",
            ("event", "channel", "outcome"),
            registry=r,
        )
        self._dropped = Counter(
            "ai_gateway_notifications_dropped_total",
            "Events not sent: the notifier's queue was full, or they were still queued at the "
            "end of a shutdown.",
            registry=r,
        )
        self._suppressed = Counter(
            "ai_gateway_notifications_suppressed_total",
            "Events a rule did not send: another instance had claimed them, or the rule sent "
            "the same event within its min_interval_s.",
            ("event",),
            registry=r,
        )

    def delivered(self, event: str, channel: str, outcome: str) -> None:
        self._deliveries.labels(event, channel, outcome).inc()

    def dropped(self, count: int = 1) -> None:
        self._dropped.inc(count)

    def suppressed(self, event: str) -> None:
        self._suppressed.labels(event).inc()
