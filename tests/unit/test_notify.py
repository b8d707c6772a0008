"""Notifications, unit by unit: thresholds, the signature, backoff, claims, the watches, and the
sender's rules, deduplication, retries and bounded queue (channels are test doubles here; the
integration tests send to a real HTTP receiver)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from ai_gateway.notify.channels import DeliveryError, email_message, signature, verify
from ai_gateway.notify.config import (
    EmailChannel,
    ErrorWatch,
    KeyExpiryWatch,
    LatencyWatch,
    NotificationsConfig,
    RateLimitWatch,
    RetryConfig,
)
from ai_gateway.notify.dedupe import LocalClaims
from ai_gateway.notify.events import Event, circuit_changed, sample_event
from ai_gateway.notify.expiry import KeyExpiryCheck
from ai_gateway.notify.metrics import NotifyMetrics
from ai_gateway.notify.sender import Notifier, backoff_s
from ai_gateway.notify.watches import AttemptWatch, BudgetWatch, RefusalWatch, crossed
from ai_gateway.observability.metrics import Metrics
from ai_gateway.security.keys import ApiKey


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_thresholds_are_crossed_once_by_the_charge_that_reaches_them() -> None:
    budget = Decimal(10)
    assert crossed(Decimal(0), Decimal(4), budget, (50, 80, 100)) == []
    assert crossed(Decimal(4), Decimal(5), budget, (50, 80, 100)) == [50]  # reaching it counts
    assert crossed(Decimal(5), Decimal(6), budget, (50, 80, 100)) == []  # already past
    assert crossed(Decimal(6), Decimal(11), budget, (50, 80, 100)) == [80, 100]


def test_budget_watch_names_the_threshold_and_the_period() -> None:
    events: list[Event] = []
    start = datetime(2025, 3, 1, tzinfo=UTC)
    window = (start, datetime(2025, 4, 1, tzinfo=UTC))
    watch = BudgetWatch((50, 80, 100), events.append)
    watch.spent("key", "k1", Decimal(10), "month", window, Decimal("7.5"), Decimal("8.25"))
    [event] = events
    assert event.kind == "budget.threshold"
    assert event.subject == "key:k1"
    assert event.data["threshold_percent"] == 80
    assert event.data["spent_usd"] == "8.25"
    assert event.data["period_start"] == "2025-03-01T00:00:00Z"
    assert event.dedupe == "budget.threshold:key:k1:80:month:20250301"


def test_the_signature_is_hmac_sha256_over_timestamp_and_body() -> None:
    body = b'{"type":"test"}'
    header = signature("s3cret", 1700000000, body)
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert verify("s3cret", header, body, now=1700000010)
    assert not verify("other", header, body, now=1700000010)
    assert not verify("s3cret", header, body + b" ", now=1700000010)
    assert not verify("s3cret", header, body, now=1700000000 + 3600)  # replayed late


def test_backoff_doubles_up_to_its_cap() -> None:
    retry = RetryConfig(retries=5, backoff_s=0.5, max_backoff_s=3)
    assert [backoff_s(retry, n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_local_claims_hold_for_their_ttl() -> None:
    clock = Clock()
    claims = LocalClaims(clock=clock)
    assert claims.claim_now("a", 10)
    assert not claims.claim_now("a", 10)
    assert claims.claim_now("b", 10)
    clock.now += 10
    assert claims.claim_now("a", 10)


def test_local_claims_stay_bounded() -> None:
    clock = Clock()
    claims = LocalClaims(max_keys=10, clock=clock)
    for n in range(25):
        assert claims.claim_now(f"k{n}", 60)
    assert len(claims._until) <= 10
    assert not claims.claim_now("k24", 60)  # the newest are kept


def test_sustained_refusals_make_one_event_not_every_429() -> None:
    clock = Clock()
    events: list[Event] = []
    watch = RefusalWatch(RateLimitWatch(count=3, window_s=10), events.append, clock)
    for _ in range(2):
        watch.refused("key", "key:k1", "rps")
        clock.now += 1
    assert events == []
    watch.refused("key", "key:k1", "rps")
    [event] = events
    assert event.kind == "ratelimit.exceeded"
    assert event.data == {
        "scope": "key",
        "name": "k1",
        "limit": "rps",
        "refusals": 3,
        "window_s": 10,
    }
    watch.refused("key", "key:k1", "rps")  # the count starts again
    assert len(events) == 1


def test_refusals_spread_out_make_no_event() -> None:
    clock = Clock()
    events: list[Event] = []
    watch = RefusalWatch(RateLimitWatch(count=3, window_s=10), events.append, clock)
    for _ in range(10):
        watch.refused("user", "user:ann", "rps")
        clock.now += 6
    assert events == []


def test_an_error_spike_on_a_deployment_is_one_event_per_window() -> None:
    clock = Clock()
    events: list[Event] = []
    watch = AttemptWatch(
        ErrorWatch(window_s=60, min_requests=10, rate=0.5), LatencyWatch(), events.append, clock
    )
    for _ in range(6):
        watch.attempt("fast/0", "fast", "openai", 0.1, True)
        clock.now += 1
    for _ in range(5):
        watch.attempt("fast/0", "fast", "openai", 0.1, False)
        clock.now += 1
    assert events == []  # 5 of 11
    watch.attempt("fast/0", "fast", "openai", 0.1, False)  # 6 of 12
    [event] = events
    assert event.kind == "errors.spike"
    assert event.data["requests"] == 12
    assert event.data["errors"] == 6
    watch.attempt("fast/0", "fast", "openai", 0.1, False)
    assert len(events) == 1  # quiet for the rest of the window
    watch.attempt("other/0", "other", "openai", 0.1, False)
    assert len(events) == 1  # another deployment has its own window


def test_errors_leave_the_window_as_it_slides() -> None:
    clock = Clock()
    events: list[Event] = []
    watch = AttemptWatch(
        ErrorWatch(window_s=10, min_requests=4, rate=0.5), LatencyWatch(), events.append, clock
    )
    for _ in range(3):
        watch.attempt("d/0", "d", "openai", 0.1, False)
    clock.now += 30  # those failures are old now
    for _ in range(4):
        watch.attempt("d/0", "d", "openai", 0.1, True)
    watch.attempt("d/0", "d", "openai", 0.1, False)  # 1 of 5
    assert events == []


def test_latency_p95_over_the_threshold_is_an_event() -> None:
    clock = Clock()
    events: list[Event] = []
    latency = LatencyWatch(window_s=60, min_requests=20, p95_ms=1000)
    watch = AttemptWatch(ErrorWatch(), latency, events.append, clock)
    for _ in range(19):
        watch.attempt("d/0", "d", "openai", 0.2, True)
    watch.attempt("d/0", "d", "openai", 1.5, True)  # 1 of 20 slow: the p95 is still fast
    assert events == []
    watch.attempt("d/0", "d", "openai", 1.5, True)  # 2 of 21: more than 5% are slow
    [event] = events
    assert event.kind == "latency.slo"
    assert event.data["over_threshold"] == 2
    assert event.data["requests"] == 21


def config(**fields: object) -> NotificationsConfig:
    base: dict[str, object] = {
        "channels": {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/x"}},
        "rules": [{"events": ["circuit.opened"], "channels": ["hook"]}],
    }
    return NotificationsConfig.model_validate({**base, **fields})


def test_a_rule_must_name_a_configured_channel() -> None:
    with pytest.raises(ValidationError, match="names channel 'nope'"):
        config(rules=[{"events": ["circuit.opened"], "channels": ["nope"]}])
    with pytest.raises(ValidationError, match="unknown event"):
        config(rules=[{"events": ["circuit.exploded"], "channels": ["hook"]}])
    assert not NotificationsConfig().enabled


class FakeChannel:
    """A channel double: fails with `failures` (in order), then delivers."""

    kind = "fake"

    def __init__(self, name: str, failures: list[DeliveryError] | None = None) -> None:
        self.name = name
        self.retry = RetryConfig(retries=3, backoff_s=0.5, max_backoff_s=1)
        self.failures = list(failures or [])
        self.sent: list[Event] = []

    async def send(self, event: Event) -> int | None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(event)
        return 204


async def drain(*notifiers: Notifier) -> None:
    for notifier in notifiers:
        await notifier.start()
    for notifier in notifiers:
        await notifier.aclose(5)


def test_one_occurrence_is_delivered_once_by_two_instances() -> None:
    async def run() -> None:
        claims = LocalClaims()  # what Redis is to two instances
        channels = [FakeChannel("hook"), FakeChannel("hook")]
        metrics = Metrics()
        counted = NotifyMetrics(metrics)
        notifiers = [Notifier(config(), {"hook": c}, claims, metrics=counted) for c in channels]
        for notifier in notifiers:
            notifier.emit(circuit_changed(deployment="fast/0", opened=True))
        await drain(*notifiers)
        assert sum(len(c.sent) for c in channels) == 1
        assert sum(n.suppressed for n in notifiers) == 1
        text = metrics.render().decode()
        assert 'ai_gateway_notifications_suppressed_total{event="circuit.opened"} 1.0' in text
        delivered = '{channel="hook",event="circuit.opened",outcome="delivered"} 1.0'
        assert "ai_gateway_notifications_total" + delivered in text

    asyncio.run(run())


def test_events_no_rule_wants_are_not_queued() -> None:
    async def run() -> None:
        channel = FakeChannel("hook")
        notifier = Notifier(config(), {"hook": channel}, LocalClaims())
        notifier.emit(circuit_changed(deployment="fast/0", opened=False))  # closed: no rule
        assert notifier.stats()["queued"] == 0
        await drain(notifier)
        assert channel.sent == []

    asyncio.run(run())


def test_a_full_queue_drops_and_counts() -> None:
    async def run() -> None:
        channel = FakeChannel("hook")
        metrics = Metrics()
        notifier = Notifier(
            config(queue_size=2), {"hook": channel}, LocalClaims(), metrics=NotifyMetrics(metrics)
        )
        for n in range(5):
            notifier.emit(circuit_changed(deployment=f"d/{n}", opened=True))
        assert notifier.stats()["dropped"] == 3
        assert "ai_gateway_notifications_dropped_total 3.0" in metrics.render().decode()
        await drain(notifier)
        assert len(channel.sent) == 2

    asyncio.run(run())


def test_a_failing_delivery_is_retried_with_backoff_and_recorded() -> None:
    async def run() -> None:
        waits: list[float] = []

        async def sleep(seconds: float) -> None:
            waits.append(seconds)

        retryable = [DeliveryError("answered 503", retryable=True, status=503)] * 2
        channel = FakeChannel("hook", retryable)
        notifier = Notifier(config(), {"hook": channel}, LocalClaims(), sleep=sleep)
        notifier.emit(circuit_changed(deployment="fast/0", opened=True))
        await drain(notifier)
        assert waits == [0.5, 1.0]
        [delivery] = notifier.deliveries()
        assert (delivery.outcome, delivery.attempts, delivery.status) == ("delivered", 3, 204)

    asyncio.run(run())


def test_a_client_error_is_not_retried() -> None:
    async def run() -> None:
        channel = FakeChannel("hook", [DeliveryError("answered 400", retryable=False, status=400)])
        notifier = Notifier(config(), {"hook": channel}, LocalClaims(), sleep=asyncio.sleep)
        delivery = await notifier.send(channel, sample_event("hi"))
        assert (delivery.outcome, delivery.attempts, delivery.status) == ("failed", 1, 400)
        assert delivery.error == "answered 400"

    asyncio.run(run())


def test_a_rule_for_every_event_and_one_channel_in_two_rules_sends_once() -> None:
    async def run() -> None:
        channel = FakeChannel("hook")
        rules = [
            {"events": ["*"], "channels": ["hook"]},
            {"events": ["circuit.opened"], "channels": ["hook"]},
        ]
        notifier = Notifier(config(rules=rules), {"hook": channel}, LocalClaims())
        assert notifier.wants("key.expiring")
        notifier.emit(circuit_changed(deployment="fast/0", opened=True))
        await drain(notifier)
        assert len(channel.sent) == 1

    asyncio.run(run())


def test_the_email_names_the_event_and_carries_its_payload() -> None:
    channel = EmailChannel.model_validate(
        {"type": "email", "host": "127.0.0.1", "from": "gw@example.com", "to": ["ops@example.com"]}
    )
    message = email_message(channel, circuit_changed(deployment="fast/0", opened=True))
    assert message["Subject"] == "[ai-gateway] circuit.opened: deployment:fast/0"
    assert message["To"] == "ops@example.com"
    assert '"deployment": "fast/0"' in message.get_content()


class Keys:
    """The one store method the expiry check reads."""

    def __init__(self, keys: list[ApiKey]) -> None:
        self.keys = keys

    async def list_keys(self, **_: object) -> list[ApiKey]:
        return self.keys


def test_keys_expiring_soon_are_events_once_per_key_and_date() -> None:
    now = datetime.now(UTC)

    def key(key_id: str, expires_in_days: float | None, revoked: bool = False) -> ApiKey:
        return ApiKey(
            id=key_id,
            user="ann",
            salt=b"s" * 16,
            secret_hash=b"h" * 32,
            created_at=now - timedelta(days=30),
            expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
            revoked_at=now if revoked else None,
        )

    keys = Keys([key("a" * 12, 2), key("b" * 12, 30), key("c" * 12, None), key("d" * 12, 1, True)])
    events: list[Event] = []
    check = KeyExpiryCheck(keys, KeyExpiryWatch(within_days=7), events.append)  # type: ignore[arg-type]
    assert asyncio.run(check.check()) == 1
    [event] = events
    assert event.kind == "key.expiring"
    assert event.data["key_id"] == "a" * 12
    assert 1.9 < event.data["days_left"] <= 2
    assert event.dedupe.startswith("key.expiring:key:aaaaaaaaaaaa:")
    assert event.ttl_s > 2 * 86400  # the claim outlives the expiry: one event per key and date
