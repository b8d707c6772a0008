"""The background writer: usage records, feedback and audit records leave the hot path here.

`submit_*` appends to a bounded in-memory buffer and returns (never blocks, never raises). A task
writes the buffer to the analytics store in batches of up to `batch_size`: when a batch is full,
and every `flush_interval_s` for what is left. Records stay in the buffer until the store has
taken them, so a failed batch is retried (exponential backoff with jitter, capped) before anything
behind it: order is kept and nothing is lost while the store is down. The store skips request ids
it already has, so a batch whose acknowledgement was lost is not stored twice.

A record is dropped only when the buffer is full (it is then counted and logged, at most once per
`drop_log_interval_s`), when it arrives after `aclose()`, when `aclose()` reaches its deadline
with the store still down, or when the store rejects the record itself (not its batch, not the
connection) in isolation after its batch failed `REJECT_AFTER` times in a row.

With a journal (`usage/journal.py`), every record taken is also appended to a file, and what a
killed process left there is taken again at `start()`: a `kill -9` does not lose the records of
requests already answered.

Call every method on the event loop's thread. The writer does not own the store: close the writer,
then the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ai_gateway.observability.logging import get_logger
from ai_gateway.stores.analytics import AnalyticsStore, StoreUnavailableError
from ai_gateway.usage.journal import Journal
from ai_gateway.usage.records import FeedbackRecord, UsageRecord

if TYPE_CHECKING:
    from ai_gateway.security.audit import AuditRecord

log = get_logger(__name__)

Kind = Literal["usage", "feedback", "audit"]
KINDS: tuple[Kind, ...] = ("usage", "feedback", "audit")
# Consecutive failures of a batch, the store being up, before its records are tried one by one.
REJECT_AFTER = 3
RETENTION_RETRY_S = 60.0


@dataclass(frozen=True, slots=True)
class WriterStats:
    written: int  # records the store has taken (usage and feedback)
    dropped: int  # records lost: buffer full, after close, shutdown deadline, rejected
    pending: int  # records buffered now
    failed_attempts: int  # store calls that failed
    store_available: bool  # whether the last store call succeeded


def _unavailable(exc: BaseException) -> bool:
    return isinstance(exc, StoreUnavailableError | TimeoutError)


def _describe(exc: BaseException) -> dict[str, str]:
    # Store errors are written to be safe to show; other exceptions are named by type only.
    detail = {"error_type": type(exc).__name__}
    if isinstance(exc, StoreUnavailableError):
        detail["detail"] = str(exc)
    return detail


class AuditSink(Protocol):
    async def write_audit(self, records: Sequence[AuditRecord]) -> None:
        """Append a batch; a record whose id exists is skipped. StoreUnavailableError when the
        batch was not written."""
        ...


class AnalyticsWriter:
    """`store` takes usage and feedback (None: analytics is off), `audit` the audit log (None:
    no audit records are taken)."""

    def __init__(
        self,
        store: AnalyticsStore | None,
        *,
        audit: AuditSink | None = None,
        max_buffer: int = 100_000,
        batch_size: int = 500,
        flush_interval_s: float = 0.5,
        retention_days: int = 0,
        on_drop: Callable[[int], None] | None = None,
        on_written: Callable[[int], None] | None = None,
        on_state: Callable[[WriterStats], None] | None = None,
        write_timeout_s: float = 10.0,
        backoff_s: tuple[float, float] = (0.1, 5.0),
        drop_log_interval_s: float = 10.0,
        retention_interval_s: float = 3600.0,
        journal: Journal | None = None,
    ) -> None:
        if max_buffer < 1 or batch_size < 1:
            raise ValueError("max_buffer and batch_size must be at least 1")
        self._store = store
        self._audit = audit
        self._max_buffer = max_buffer
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._retention_days = retention_days
        self._on_drop = on_drop
        self._on_written = on_written
        self._on_state = on_state
        self._write_timeout_s = write_timeout_s
        self._backoff_s = backoff_s
        self._drop_log_interval_s = drop_log_interval_s
        self._retention_interval_s = retention_interval_s
        self._queues: dict[Kind, deque[Any]] = {kind: deque() for kind in KINDS}
        self._usage: deque[UsageRecord] = self._queues["usage"]
        self._popped: dict[Kind, int] = dict.fromkeys(KINDS, 0)
        self._buffered = 0
        self._written = 0
        self._dropped = 0
        self._failed_attempts = 0
        self._available = True
        self._outage_started = 0.0
        self._head_failures = 0
        self._unlogged_drops: dict[str, int] = {}
        self._last_drop_log = -float("inf")
        self._wake = asyncio.Event()
        self._io_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._journal = journal

    # --- the hot path ----------------------------------------------------------------------------

    def submit_usage(self, record: UsageRecord) -> None:
        # Once per request: `_admit` and `_nudge` written out.
        if self._closed or self._buffered >= self._max_buffer:
            self._admit()  # refuses, counting and logging the drop
            return
        queue = self._usage
        queue.append(record)
        self._buffered += 1
        if self._journal is not None:
            self._journal.append("usage", record)
        if len(queue) >= self._batch_size and self._available:
            self._wake.set()

    def submit_feedback(self, record: FeedbackRecord) -> None:
        if self._admit():
            self._queues["feedback"].append(record)
            self._buffered += 1
            if self._journal is not None:
                self._journal.append("feedback", record)
            self._nudge("feedback")

    def submit_audit(self, record: AuditRecord) -> None:
        if self._audit is not None and self._admit():
            self._queues["audit"].append(record)
            self._buffered += 1
            if self._journal is not None:
                self._journal.append("audit", record)
            self._nudge("audit")

    def pending(self, request_id: str, *, user: str | None = None) -> bool:
        """Whether a usage record for `request_id` (with `user`: one recorded for that user) is
        buffered, not yet written (a scan, newest first: this serves feedback, which is rare and
        usually about a recent request; no index is kept on the hot path)."""
        return any(
            record.request_id == request_id and (user is None or record.user == user)
            for record in reversed(self._usage)
        )

    @property
    def stats(self) -> WriterStats:
        return WriterStats(
            written=self._written,
            dropped=self._dropped,
            pending=self._size(),
            failed_attempts=self._failed_attempts,
            store_available=self._available,
        )

    def _size(self) -> int:
        return self._buffered  # the queues' total length, kept on the hot path's terms

    def _admit(self) -> bool:
        if self._closed:
            self._drop(1, "closed")
            return False
        if self._size() >= self._max_buffer:
            self._drop(1, "buffer_full")
            return False
        return True

    def _nudge(self, kind: Kind) -> None:
        # A full batch is written now, unless the store is down (then the backoff decides).
        if self._available and len(self._queues[kind]) >= self._batch_size:
            self._wake.set()

    def _report_state(self) -> None:
        """Hand the stats to `on_state` (each turn of the background task, and at close)."""
        if self._on_state is not None:
            try:
                self._on_state(self.stats)
            except Exception as exc:
                log.warning("analytics_callback_failed", callback="on_state", **_describe(exc))

    def _drop(self, count: int, reason: str) -> None:
        self._dropped += count
        self._unlogged_drops[reason] = self._unlogged_drops.get(reason, 0) + count
        self._log_drops(force=reason == "shutdown")
        if self._on_drop is not None:
            try:
                self._on_drop(count)
            except Exception as exc:  # a metrics callback must not break the caller
                log.warning("analytics_callback_failed", callback="on_drop", **_describe(exc))

    def _log_drops(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not self._unlogged_drops:
            return
        if not force and now - self._last_drop_log < self._drop_log_interval_s:
            return
        self._last_drop_log = now
        log.error(
            "analytics_records_dropped",
            dropped=sum(self._unlogged_drops.values()),
            reasons=dict(self._unlogged_drops),
            total_dropped=self._dropped,
            max_buffer=self._max_buffer,
        )
        self._unlogged_drops.clear()

    # --- writing ---------------------------------------------------------------------------------

    async def _call(self, kind: Kind, batch: Sequence[Any], timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            if kind == "audit":
                assert self._audit is not None
                await self._audit.write_audit(batch)
                return
            assert self._store is not None  # nothing else is buffered without a store
            if kind == "usage":
                await self._store.write_usage(batch)
            else:
                await self._store.write_feedback(batch)

    def _pop(self, kind: Kind, count: int) -> None:
        queue = self._queues[kind]
        for _ in range(count):
            queue.popleft()
        self._popped[kind] += count
        self._buffered -= count
        if self._journal is not None:
            self._journal.taken(kind, count)

    def _succeeded(self, written: int) -> None:
        self._head_failures = 0
        if not self._available:
            self._available = True
            log.info(
                "analytics_store_recovered",
                outage_s=round(time.monotonic() - self._outage_started, 3),
                pending=self._size(),
            )
        if written:
            self._written += written
            if self._on_written is not None:
                try:
                    self._on_written(written)
                except Exception as exc:
                    log.warning(
                        "analytics_callback_failed", callback="on_written", **_describe(exc)
                    )

    def _failed(self, exc: Exception) -> None:
        self._failed_attempts += 1
        if not _unavailable(exc):
            self._head_failures += 1
        if self._available:
            self._available = False
            self._outage_started = time.monotonic()
            log.warning("analytics_store_unavailable", pending=self._size(), **_describe(exc))

    async def _write_batch(self, kind: Kind, limit: int, timeout_s: float) -> None:
        """Write the oldest `limit` (at most batch_size) records of `kind`; raise when the store
        fails (they stay buffered)."""
        async with self._io_lock:
            batch = list(islice(self._queues[kind], min(limit, self._batch_size)))
            if not batch:
                return
            try:
                await self._call(kind, batch, timeout_s)
            except Exception as exc:
                self._failed(exc)
                if _unavailable(exc) or self._head_failures < REJECT_AFTER:
                    raise
                await self._isolate(kind, batch, timeout_s)
                return
            self._pop(kind, len(batch))
            self._succeeded(len(batch))

    async def _isolate(self, kind: Kind, batch: list[Any], timeout_s: float) -> None:
        """The batch keeps failing though the store is up: write its records one by one and drop
        those the store rejects on their own."""
        for record in batch:
            try:
                await self._call(kind, [record], timeout_s)
            except Exception as exc:
                if _unavailable(exc):
                    self._failed(exc)
                    raise
                self._pop(kind, 1)
                log.error(
                    "analytics_record_rejected",
                    kind=kind,
                    request_id=getattr(record, "request_id", None),
                    **_describe(exc),
                )
                self._drop(1, "rejected")
                continue
            self._pop(kind, 1)
            self._succeeded(1)
        self._head_failures = 0

    async def _drain(self, *, full_only: bool, timeout_s: float | None = None) -> None:
        """Write what is buffered now (`full_only`: only whole batches); raise on a failure."""
        for kind in KINDS:
            count = len(self._queues[kind])
            if full_only:
                count -= count % self._batch_size
            target = self._popped[kind] + count
            while self._popped[kind] < target and self._queues[kind]:
                limit = target - self._popped[kind]
                await self._write_batch(kind, limit, timeout_s or self._write_timeout_s)

    def _backoff(self, previous: float) -> float:
        low, high = self._backoff_s
        return min(high, previous * 2) if previous else low

    async def _run(self) -> None:
        delay = 0.0
        while True:
            timed_out = await self._sleep(
                delay * random.uniform(0.5, 1.0) or self._flush_interval_s
            )
            try:
                await self._drain(full_only=not timed_out and self._available)
                delay = 0.0
            except Exception:
                delay = self._backoff(delay)
            self._log_drops()
            self._report_state()

    async def _sleep(self, seconds: float) -> bool:
        """Wait `seconds` or until a batch is full; True when the time ran out."""
        self._wake.clear()
        if self._available and any(len(q) >= self._batch_size for q in self._queues.values()):
            return False
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            return True
        return False

    async def _retention(self) -> None:
        assert self._store is not None
        while True:
            before = datetime.now(UTC) - timedelta(days=self._retention_days)
            pause = self._retention_interval_s
            try:
                deleted = await self._store.purge(before)
            except Exception as exc:
                log.warning("analytics_retention_failed", **_describe(exc))
                pause = min(pause, RETENTION_RETRY_S)
            else:
                log.info("analytics_retention_purged", deleted=deleted, before=before.isoformat())
            await asyncio.sleep(pause)

    # --- life cycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._tasks or self._closed:
            return
        if self._journal is not None:
            self._recover(self._journal)
        self._tasks.append(asyncio.create_task(self._run(), name="analytics-writer"))
        if self._retention_days > 0 and self._store is not None:
            self._tasks.append(asyncio.create_task(self._retention(), name="analytics-retention"))

    def _recover(self, journal: Journal) -> None:
        """Take again the records a killed process left in the journal."""
        submit: dict[str, Callable[[Any], None]] = {
            "usage": self.submit_usage,
            "feedback": self.submit_feedback,
            "audit": self.submit_audit,
        }
        for kind, record in journal.recover():
            submit[kind](record)

    async def flush(self) -> None:
        """Write everything buffered now. StoreUnavailableError when the store fails (the
        records stay buffered and the background task keeps retrying)."""
        try:
            await self._drain(full_only=False)
        except StoreUnavailableError:
            raise
        except Exception as exc:
            raise StoreUnavailableError(
                f"the analytics store did not take the batch ({type(exc).__name__})"
            ) from exc

    async def aclose(self, timeout_s: float = 30.0) -> None:
        """Stop taking records and write everything buffered, retrying while the store is down
        until `timeout_s` has passed; what is still unwritten then is counted and logged as
        dropped. Does not close the store."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        delay = 0.0
        while self._size() and (remaining := deadline - loop.time()) > 0:
            try:
                await self._drain(full_only=False, timeout_s=min(remaining, self._write_timeout_s))
            except Exception:
                delay = self._backoff(delay)
                await asyncio.sleep(min(delay * random.uniform(0.5, 1.0), remaining))
        left = self._size()
        if left:
            for queue in self._queues.values():
                queue.clear()
            self._buffered = 0
            if self._journal is None:
                self._drop(left, "shutdown")
            else:  # not lost: the next start takes them from the journal
                log.warning("analytics_records_left_in_journal", count=left)
        if self._journal is not None:
            self._journal.close()
        self._log_drops(force=True)
        self._report_state()
        log.info("analytics_writer_closed", written=self._written, dropped=self._dropped)
