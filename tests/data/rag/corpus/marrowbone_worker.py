"""The marrowbone worker loop: take a job, run it, acknowledge it, or schedule a retry.

Workers are stateless processes. Each one leases a job from the queue, which hides the job from
other workers for MARROWBONE_VISIBILITY_TIMEOUT_S seconds. If the worker dies before it
acknowledges the job, the lease expires and another worker picks the job up, so every handler
must be safe to run more than once for the same job.

Failures are retried with exponential backoff and full jitter. After MARROWBONE_MAX_ATTEMPTS
failed attempts the job is moved to the dead-letter queue and an LRK-6604 line is logged, which
is what the on-call engineer looks for when the backlog grows.
"""

from __future__ import annotations

import logging
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from larkspur_config import (
    MARROWBONE_BACKOFF_BASE_S,
    MARROWBONE_MAX_ATTEMPTS,
    MARROWBONE_VISIBILITY_TIMEOUT_S,
)

log = logging.getLogger("marrowbone.worker")

# The backoff never exceeds this, however many attempts have failed: one hour.
MAX_BACKOFF_S = 3_600

# A handler that runs longer than this fraction of the visibility timeout extends its lease,
# so that a slow but healthy job is not handed to a second worker while it is still running.
LEASE_EXTENSION_FRACTION = 0.5

# Jobs of these kinds are never retried automatically, because repeating them has effects on
# the outside world that an operator must judge first.
NEVER_RETRY = frozenset({"payment.capture", "email.bulk_send"})


@dataclass
class Job:
    id: str
    kind: str
    payload: dict[str, Any]
    attempt: int  # 1 for the first run


class Queue(Protocol):
    def lease(self, timeout_s: int) -> Job | None: ...
    def ack(self, job: Job) -> None: ...
    def retry_later(self, job: Job, delay_s: float) -> None: ...
    def dead_letter(self, job: Job, reason: str) -> None: ...
    def extend(self, job: Job, timeout_s: int) -> None: ...


Handler = Callable[[Job], None]


def backoff_seconds(attempt: int, rng: random.Random | None = None) -> float:
    """Full jitter: a uniform delay between zero and the exponential cap for this attempt.

    Spreading retries uniformly stops a burst of jobs that failed together from retrying in
    lockstep and overloading the dependency that made them fail in the first place.
    """
    cap = min(MAX_BACKOFF_S, MARROWBONE_BACKOFF_BASE_S**attempt)
    return (rng or random).uniform(0, cap)


class Worker:
    def __init__(self, queue: Queue, handlers: dict[str, Handler]) -> None:
        self.queue = queue
        self.handlers = handlers
        self.stopping = False

    def install_signal_handlers(self) -> None:
        # On SIGTERM, finish the current job and exit; kdeploy gives workers 120 seconds.
        signal.signal(signal.SIGTERM, lambda *_: self.stop())

    def stop(self) -> None:
        self.stopping = True

    def run_forever(self) -> None:
        while not self.stopping:
            job = self.queue.lease(MARROWBONE_VISIBILITY_TIMEOUT_S)
            if job is None:
                time.sleep(1.0)
                continue
            self.run_one(job)

    def run_one(self, job: Job) -> None:
        handler = self.handlers.get(job.kind)
        if handler is None:
            self.queue.dead_letter(job, f"no handler for kind {job.kind!r}")
            return
        try:
            handler(job)
        except Exception as exc:
            self.on_failure(job, exc)
        else:
            self.queue.ack(job)

    def on_failure(self, job: Job, exc: Exception) -> None:
        if job.kind in NEVER_RETRY:
            log.error("LRK-6604 job %s (%s) failed and is never retried: %s", job.id, job.kind, exc)
            self.queue.dead_letter(job, str(exc))
            return
        if job.attempt >= MARROWBONE_MAX_ATTEMPTS:
            log.error("LRK-6604 job %s failed %d times: %s", job.id, job.attempt, exc)
            self.queue.dead_letter(job, str(exc))
            return
        delay = backoff_seconds(job.attempt)
        log.warning(
            "job %s attempt %d failed, retrying in %.1fs: %s", job.id, job.attempt, delay, exc
        )
        self.queue.retry_later(job, delay)
