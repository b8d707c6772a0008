"""The background analytics writer against an in-memory store that can be switched "down"."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from ai_gateway.stores.analytics import StoreUnavailableError
from ai_gateway.usage.records import FeedbackRecord, UsageRecord
from ai_gateway.usage.writer import REJECT_AFTER, AnalyticsWriter, WriterStats
from analytics_support import usage_record

FAST = {"backoff_s": (0.005, 0.02), "write_timeout_s": 1.0}
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def usage(i: int | str) -> UsageRecord:
    return usage_record(f"req-{i}", created_at=T0)


def feedback(i: int | str) -> FeedbackRecord:
    return FeedbackRecord(f"req-{i}", T0, 1.0, "up", None, ())


class FakeStore:
    """Keeps what it is given; `down` makes every call fail like an unreachable database."""

    def __init__(self) -> None:
        self.usage: dict[str, UsageRecord] = {}
        self.feedback: list[FeedbackRecord] = []
        self.batches: list[list[str]] = []
        self.calls: list[str] = []
        self.down = False
        self.hang_next = False
        self.reject: set[str] = set()
        self.purges: list[datetime] = []

    async def _enter(self, kind: str) -> None:
        self.calls.append(kind)
        await asyncio.sleep(0)
        if self.down:
            raise StoreUnavailableError("fake store is down")
        if self.hang_next:
            self.hang_next = False
            await asyncio.Event().wait()

    async def write_usage(self, records: Sequence[UsageRecord]) -> None:
        await self._enter("usage")
        if any(r.request_id in self.reject for r in records):
            raise ValueError("value out of range")
        self.batches.append([r.request_id for r in records])
        for record in records:
            self.usage.setdefault(record.request_id, record)

    async def write_feedback(self, records: Sequence[FeedbackRecord]) -> None:
        await self._enter("feedback")
        self.feedback.extend(records)

    async def purge(self, before: datetime) -> int:
        await self._enter("purge")
        self.purges.append(before)
        return 0


async def eventually(predicate: Callable[[], bool], timeout_s: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.002)


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


def make(store: FakeStore, **options: Any) -> AnalyticsWriter:
    return AnalyticsWriter(store, **{**FAST, **options})  # type: ignore[arg-type]


async def test_flush_writes_batches_of_at_most_batch_size_in_order() -> None:
    store = FakeStore()
    writer = make(store, batch_size=500)
    for i in range(1200):
        writer.submit_usage(usage(i))
    assert writer.stats.pending == 1200
    await writer.flush()
    assert [len(batch) for batch in store.batches] == [500, 500, 200]
    assert [rid for batch in store.batches for rid in batch] == [f"req-{i}" for i in range(1200)]
    assert writer.stats.written == 1200
    assert writer.stats.pending == 0


async def test_background_task_writes_a_partial_batch_after_the_interval() -> None:
    store = FakeStore()
    writer = make(store, flush_interval_s=0.02)
    await writer.start()
    for i in range(3):
        writer.submit_usage(usage(i))
    await eventually(lambda: len(store.usage) == 3)
    assert store.batches == [["req-0", "req-1", "req-2"]]
    await writer.aclose()


async def test_a_full_batch_is_written_without_waiting_for_the_interval() -> None:
    store = FakeStore()
    writer = make(store, batch_size=10, flush_interval_s=60.0)
    await writer.start()
    for i in range(15):
        writer.submit_usage(usage(i))
    await eventually(lambda: len(store.usage) == 10)
    await asyncio.sleep(0.05)
    assert writer.stats.pending == 5  # the partial batch waits for its interval
    await writer.aclose()
    assert len(store.usage) == 15


async def test_store_outage_backs_off_keeps_everything_and_writes_each_record_once() -> None:
    store = FakeStore()
    store.down = True
    writer = make(store, batch_size=20, flush_interval_s=0.005)
    with capture_logs() as logs:
        await writer.start()
        for i in range(50):
            writer.submit_usage(usage(i))
        await eventually(lambda: writer.stats.failed_attempts >= 3)
        await asyncio.sleep(0.2)
        failed = writer.stats.failed_attempts
        assert failed < 40  # backoff (5 ms doubling to 20 ms), not a busy loop
        assert writer.stats.written == 0
        assert writer.stats.pending == 50
        assert not writer.stats.store_available
        store.down = False
        await eventually(lambda: writer.stats.written == 50)
        await writer.aclose()
    assert list(store.usage) == [f"req-{i}" for i in range(50)]
    assert sum(len(batch) for batch in store.batches) == 50  # no record written twice
    assert writer.stats.dropped == 0
    assert writer.stats.store_available
    assert len(events(logs, "analytics_store_unavailable")) == 1
    assert events(logs, "analytics_store_unavailable")[0]["detail"].endswith("fake store is down")
    assert len(events(logs, "analytics_store_recovered")) == 1


async def test_records_are_dropped_counted_and_logged_only_when_the_buffer_is_full() -> None:
    store = FakeStore()
    store.down = True
    drops: list[int] = []
    writer = make(store, max_buffer=100, on_drop=drops.append)
    with capture_logs() as logs:
        for i in range(100):
            writer.submit_usage(usage(i))
        assert writer.stats.dropped == 0
        for i in range(100, 130):
            writer.submit_usage(usage(i))
        writer.submit_feedback(feedback(0))
    assert writer.stats.dropped == 31
    assert sum(drops) == 31
    dropped_logs = events(logs, "analytics_records_dropped")
    assert len(dropped_logs) == 1  # at most once per interval
    assert dropped_logs[0]["reasons"] == {"buffer_full": 1}
    assert not writer.pending("req-100")
    store.down = False
    await writer.flush()
    assert list(store.usage) == [f"req-{i}" for i in range(100)]


async def test_submit_never_raises_even_when_a_callback_does() -> None:
    def broken(_: int) -> None:
        raise RuntimeError("metrics exploded")

    store = FakeStore()
    writer = make(store, max_buffer=1, on_drop=broken, on_written=broken)
    writer.submit_usage(usage(0))
    writer.submit_usage(usage(1))
    assert writer.stats.dropped == 1
    await writer.flush()
    assert writer.stats.written == 1


async def test_flush_raises_while_the_store_is_down_and_keeps_the_records() -> None:
    store = FakeStore()
    store.down = True
    writer = make(store)
    writer.submit_usage(usage(0))
    with pytest.raises(StoreUnavailableError):
        await writer.flush()
    assert writer.pending("req-0")
    store.down = False
    await writer.flush()
    assert not writer.pending("req-0")
    assert list(store.usage) == ["req-0"]


async def test_pending_tracks_buffered_usage_records() -> None:
    store = FakeStore()
    writer = make(store)
    writer.submit_usage(usage("a"))
    writer.submit_usage(usage("a"))  # the same id twice (a retried record): pending until both go
    assert writer.pending("req-a")
    assert not writer.pending("req-b")
    await writer.flush()
    assert not writer.pending("req-a")


async def test_feedback_is_written_after_the_usage_it_follows() -> None:
    store = FakeStore()
    writer = make(store)
    writer.submit_usage(usage(0))
    writer.submit_feedback(feedback(0))
    await writer.flush()
    assert store.calls == ["usage", "feedback"]
    assert store.feedback == [feedback(0)]
    assert writer.stats.written == 2


async def test_aclose_writes_everything_buffered_then_refuses_new_records() -> None:
    store = FakeStore()
    writer = make(store, batch_size=500, flush_interval_s=60.0)
    await writer.start()
    for i in range(1234):
        writer.submit_usage(usage(i))
    writer.submit_feedback(feedback(1))
    await writer.aclose()
    assert len(store.usage) == 1234
    assert len(store.feedback) == 1
    writer.submit_usage(usage("late"))
    assert writer.stats.dropped == 1
    assert "req-late" not in store.usage


async def test_aclose_keeps_retrying_until_the_store_comes_back() -> None:
    store = FakeStore()
    store.down = True
    writer = make(store)
    await writer.start()
    for i in range(20):
        writer.submit_usage(usage(i))

    async def recover() -> None:
        await asyncio.sleep(0.15)
        store.down = False

    recovery = asyncio.create_task(recover())
    await writer.aclose(timeout_s=5.0)
    await recovery
    assert len(store.usage) == 20
    assert writer.stats.dropped == 0


async def test_aclose_counts_and_logs_what_the_deadline_leaves_unwritten() -> None:
    store = FakeStore()
    store.down = True
    drops: list[int] = []
    writer = make(store, on_drop=drops.append)
    for i in range(20):
        writer.submit_usage(usage(i))
    with capture_logs() as logs:
        await writer.aclose(timeout_s=0.1)
    assert writer.stats.dropped == 20
    assert drops == [20]
    assert events(logs, "analytics_records_dropped")[0]["reasons"] == {"shutdown": 20}
    assert not writer.pending("req-0")


async def test_a_hung_store_call_times_out_and_the_batch_is_retried() -> None:
    store = FakeStore()
    store.hang_next = True
    writer = make(store, write_timeout_s=0.05, flush_interval_s=0.01)
    await writer.start()
    writer.submit_usage(usage(0))
    await eventually(lambda: writer.stats.written == 1)
    await writer.aclose()
    assert writer.stats.failed_attempts == 1
    assert store.batches == [["req-0"]]


async def test_a_record_the_store_rejects_does_not_block_the_others() -> None:
    store = FakeStore()
    store.reject = {"req-3"}
    writer = make(store, flush_interval_s=0.005)
    with capture_logs() as logs:
        await writer.start()
        for i in range(10):
            writer.submit_usage(usage(i))
        await eventually(lambda: writer.stats.pending == 0)
        await writer.aclose()
    assert list(store.usage) == [f"req-{i}" for i in range(10) if i != 3]
    assert writer.stats.dropped == 1
    assert writer.stats.failed_attempts >= REJECT_AFTER
    assert [e["request_id"] for e in events(logs, "analytics_record_rejected")] == ["req-3"]


async def test_retention_purges_at_start_and_then_periodically() -> None:
    store = FakeStore()
    writer = make(store, retention_days=7, retention_interval_s=0.02)
    await writer.start()
    await eventually(lambda: len(store.purges) >= 2)
    await writer.aclose()
    expected = datetime.now(UTC) - timedelta(days=7)
    assert abs(store.purges[0] - expected) < timedelta(minutes=1)


async def test_no_retention_means_nothing_is_purged() -> None:
    store = FakeStore()
    writer = make(store, retention_days=0, retention_interval_s=0.01)
    await writer.start()
    await asyncio.sleep(0.05)
    await writer.aclose()
    assert store.purges == []


async def test_on_state_reports_the_backlog_and_the_store_after_each_turn() -> None:
    store = FakeStore()
    store.down = True
    seen: list[WriterStats] = []
    writer = make(store, batch_size=20, flush_interval_s=0.005, on_state=seen.append)
    await writer.start()
    for i in range(5):
        writer.submit_usage(usage(i))
    await eventually(lambda: any(s.failed_attempts and s.pending == 5 for s in seen))
    assert not seen[-1].store_available
    store.down = False
    await eventually(lambda: bool(seen) and seen[-1].written == 5 and seen[-1].pending == 0)
    assert seen[-1].store_available
    await writer.aclose()
    assert seen[-1].written == 5  # and once more at close


async def test_pending_with_a_user_finds_only_that_users_requests() -> None:
    writer = make(FakeStore())
    writer.submit_usage(usage_record("req-a", user="alice"))
    assert writer.pending("req-a", user="alice")
    assert writer.pending("req-a")
    assert not writer.pending("req-a", user="bob")
