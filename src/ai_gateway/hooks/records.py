"""`on_record` hooks: each finished request's usage record, for an operator's own sink, off the
hot path.

`RecordHooks` is the usage recorder's sink: it passes each record on to the gateway's own sink
(the background writer, when analytics are on) and puts it in a bounded queue; one task gives
the queued records to the `on_record` hooks, in order. The request never waits for a hook: when
the queue is full the record is not given to the hooks (counted as a `dropped` failure of each,
and logged at most once per `DROP_LOG_INTERVAL_S`). On shutdown the queue is drained for a
bounded time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

from ai_gateway.errors import GatewayError
from ai_gateway.hooks.api import Caller, HookContext
from ai_gateway.hooks.runner import Hook, HookMetrics
from ai_gateway.observability.logging import get_logger
from ai_gateway.usage.recorder import UsageSink
from ai_gateway.usage.records import UsageRecord

log = get_logger(__name__)
DROP_LOG_INTERVAL_S = 10.0


def _context(hook: Hook, record: UsageRecord) -> HookContext:
    return HookContext(
        hook=hook.name,
        point="on_record",
        request_id=record.request_id,
        endpoint=record.route,
        model=record.model,
        stream=record.stream,
        caller=Caller(
            kind="key" if record.key_id else ("user" if record.user else "anonymous"),
            user=record.user,
            team=record.team,
            key_id=record.key_id,
        ),
        body={},
        record=record,
    )


class RecordHooks:
    def __init__(
        self,
        hooks: Sequence[Hook],
        metrics: HookMetrics,
        max_queue: int = 10_000,
    ) -> None:
        self._hooks = tuple(hooks)
        self._inner: UsageSink | None = None
        self._metrics = metrics
        self._queue: asyncio.Queue[UsageRecord] = asyncio.Queue(max_queue)
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._last_drop_log = 0.0

    def attach(self, inner: UsageSink | None) -> None:
        """The sink each record is passed on to first (the background writer; None: none)."""
        self._inner = inner

    def submit_usage(self, record: UsageRecord) -> None:
        if self._inner is not None:
            self._inner.submit_usage(record)
        if self._closed:
            return
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            self._dropped(record)

    def _dropped(self, record: UsageRecord) -> None:
        for hook in self._hooks:
            policy = "closed" if hook.fail_closed else "open"
            self._metrics.failures.labels(hook.name, "on_record", "dropped", policy).inc()
        now = time.monotonic()
        if now - self._last_drop_log >= DROP_LOG_INTERVAL_S:
            self._last_drop_log = now
            log.warning("hook_records_dropped", request_id=record.request_id, reason="queue_full")

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="on_record hooks")

    async def _run(self) -> None:
        while True:
            record = await self._queue.get()
            try:
                await self._give(record)
            finally:
                self._queue.task_done()

    async def _give(self, record: UsageRecord) -> None:
        for hook in self._hooks:
            if hook.models and record.model not in hook.models:
                continue
            with contextlib.suppress(GatewayError):  # failing closed fails nothing here
                await hook(_context(hook, record))

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """Give what is queued to the hooks (at most `timeout_s`), then stop."""
        self._closed = True
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout_s)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
